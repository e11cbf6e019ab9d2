/**
 * Tokenizers: browser-safe API (the Node file helpers are in `./node.js`).
 */
export type { TextTokenizer, EncodeOptions, DecodeOptions } from './text-tokenizer.js';
export { Tokenizer } from './tokenizer.js';
export type { TokenizerCompanions } from './tokenizer.js';
export { DetokenizeStream } from './stream.js';
export type { DetokenizeStreamOptions } from './stream.js';
export { ByteLevelTokenizer } from './byte-level.js';
export type { ByteLevelTokenizerOptions } from './byte-level.js';
export { trainBpe, TrainedBpe } from './bpe-train.js';
export type { BpeTrainOptions } from './bpe-train.js';
export { cleanUpTokenization } from './cleanup.js';
export type { HfByteLevelBpeJson, HfTokenizerConfig } from './hf-json.js';
