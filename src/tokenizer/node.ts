/**
 * Reading and writing tokenizer files in a model directory (Node only; the rest of src/tokenizer runs in
 * browsers, which give the parsed JSON objects to `new Tokenizer(...)` themselves).
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { TOKENIZER_LIMITS } from './limits.js';
import { Tokenizer, TOKENIZER_COMPANION_FILES } from './tokenizer.js';

/**
 * Loads the tokenizer of a model directory: `tokenizer.json` (required) and, when present,
 * `tokenizer_config.json`, `special_tokens_map.json` and `generation_config.json`.
 * Throws FILE_NOT_FOUND when `tokenizer.json` is missing, CORRUPT_FILE when a file is not valid JSON or
 * not a tokenizer.
 */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const tokenizerPath = join(dir, 'tokenizer.json');
  const tokenizerJson = await readJson(tokenizerPath, TOKENIZER_LIMITS.fileBytes);
  if (tokenizerJson === undefined) {
    fail(
      'FILE_NOT_FOUND',
      `no tokenizer.json in ${dir} (a Hugging Face model directory has tokenizer.json beside config.json)`,
      {
        file: tokenizerPath,
        dir,
      },
    );
  }
  const [tokenizerConfig, specialTokensMap, generationConfig] = await Promise.all(
    TOKENIZER_COMPANION_FILES.map((f) => readJson(join(dir, f), TOKENIZER_LIMITS.companionFileBytes)),
  );
  return new Tokenizer(tokenizerJson, tokenizerConfig, { specialTokensMap, generationConfig, source: tokenizerPath });
}

/** Parsed JSON of a file, or undefined when it does not exist; CORRUPT_FILE past maxBytes. */
async function readJson(path: string, maxBytes: number): Promise<unknown> {
  let text: string;
  try {
    const size = (await stat(path)).size;
    if (size > maxBytes) {
      const [got, limit] = [size.toLocaleString('en-US'), maxBytes.toLocaleString('en-US')];
      fail(
        'CORRUPT_FILE',
        `${path} is ${got} bytes, more than the ${limit} mamba-ts reads for this file ` +
          '(no published tokenizer comes near)',
        { file: path },
      );
    }
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') return undefined;
    if (isNodeError(e) && e.code === 'EISDIR')
      fail('CORRUPT_FILE', `${path} is a directory, expected a JSON file`, { file: path });
    throw e;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    fail('CORRUPT_FILE', `${path} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`, { file: path });
  }
}

function isNodeError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && 'code' in e;
}

export interface TokenizerFiles {
  /** `tokenizer.json` content (from `toTokenizerJson()`). */
  readonly tokenizerJson: unknown;
  /** `tokenizer_config.json` content (from `toTokenizerConfig()`). */
  readonly tokenizerConfig?: unknown;
}

/** Writes `tokenizer.json` (and `tokenizer_config.json` when given) into dir, creating it if needed. */
export async function writeTokenizerFiles(dir: string, files: TokenizerFiles): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizerJson, null, 2) + '\n');
  if (files.tokenizerConfig !== undefined) {
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig, null, 2) + '\n');
  }
}
