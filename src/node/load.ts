import { fileURLToPath } from 'node:url';
import { isMambaError } from '../errors.js';
import { resolveModel, type HubOptions } from '../io/hub.js';
import { Model } from '../model.js';
import { loadAnyLanguageModel, type LoadLmOptions } from '../models/node/load-checkpoint.js';
import { loadTokenizer } from '../tokenizer/node.js';
import { readChatSetup } from './chat-files.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

// The whole model: hub or directory -> weights (models/node/load-checkpoint.ts) + tokenizer.

/** The model shipped in the package, used when no --model is given. */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../../models/default/', import.meta.url));

export interface LoadModelOptions extends LoadLmOptions, HubOptions {}

/**
 * Loads a model by hub id (`org/name[@revision]`, downloaded into the Hugging Face cache) or local
 * directory, with its tokenizer when the directory has `tokenizer.json`, and its chat template and EOS ids.
 */
export async function loadModel(idOrPath: string = DEFAULT_MODEL_DIR, o: LoadModelOptions = {}): Promise<Model> {
  const dir = await resolveModel(idOrPath, o);
  const lm = await loadAnyLanguageModel(dir, o);
  let tokenizer: Tokenizer | undefined;
  try {
    tokenizer = await loadTokenizer(dir);
  } catch (e) {
    if (!isMambaError(e, 'FILE_NOT_FOUND')) throw e;
  }
  return new Model(lm, tokenizer, idOrPath, await readChatSetup(dir));
}
