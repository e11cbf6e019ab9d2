import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { MAX_CONFIG_JSON_BYTES, parseUntrustedJson } from '../io/json.js';
import { chatSetupFrom, type ChatSetup } from '../generate/chat-template.js';

/**
 * What a model directory says about chatting (see chatSetupFrom): chat_template.jinja or tokenizer_config.json's
 * chat_template, and the EOS ids of config.json and generation_config.json.
 */
export async function readChatSetup(dir: string): Promise<ChatSetup> {
  return chatSetupFrom({
    chatTemplateJinja: await readText(join(dir, 'chat_template.jinja')),
    tokenizerConfig: await readJson(join(dir, 'tokenizer_config.json')),
    config: await readJson(join(dir, 'config.json')),
    generationConfig: await readJson(join(dir, 'generation_config.json')),
  });
}

async function readText(path: string): Promise<string | undefined> {
  try {
    // checked before reading: these files are untrusted and a multi-GB one would be read whole
    const { size } = await stat(path);
    if (size > MAX_CONFIG_JSON_BYTES) {
      fail('CORRUPT_FILE', `${path} has ${size} bytes, more than the ${MAX_CONFIG_JSON_BYTES}-byte limit`, {
        path,
        size,
      });
    }
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function readJson(path: string): Promise<unknown> {
  const text = await readText(path);
  if (text === undefined) return undefined;
  return parseUntrustedJson(text, path, { maxBytes: MAX_CONFIG_JSON_BYTES });
}
