import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { pickChatTemplate } from '../generate/chat-template.js';
import type { ChatSetup } from '../model.js';

/**
 * What a model directory says about chatting: the chat template (`chat_template.jinja`, which transformers 5 writes
 * and prefers, else tokenizer_config.json's `chat_template`) and every EOS id it declares (`eos_token_id` of
 * config.json and generation_config.json, a number or a list: instruct checkpoints often list the end-of-turn
 * token there beside the tokenizer's EOS).
 */
export async function readChatSetup(dir: string): Promise<ChatSetup> {
  const jinja = await readText(join(dir, 'chat_template.jinja'));
  const tokenizerConfig = await readJsonObject(dir, 'tokenizer_config.json');
  const template = jinja ?? pickChatTemplate(tokenizerConfig?.chat_template);
  const eos = new Set<number>();
  for (const file of ['config.json', 'generation_config.json']) {
    const v = (await readJsonObject(dir, file))?.eos_token_id;
    if (v === undefined || v === null) continue;
    for (const id of Array.isArray(v) ? v : [v]) {
      if (!Number.isSafeInteger(id) || (id as number) < 0)
        fail('CORRUPT_FILE', `${file}: eos_token_id must be a token id or a list of them, got ${JSON.stringify(v)}`);
      eos.add(id as number);
    }
  }
  return { template, eosTokenIds: [...eos] };
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function readJsonObject(dir: string, file: string): Promise<Record<string, unknown> | undefined> {
  const text = await readText(join(dir, file));
  if (text === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    fail('CORRUPT_FILE', `${join(dir, file)} is not valid JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) fail('CORRUPT_FILE', `${join(dir, file)} must hold an object`);
  return v as Record<string, unknown>;
}
