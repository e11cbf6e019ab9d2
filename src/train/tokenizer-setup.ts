import { ByteLevelTokenizer } from '../tokenizer/byte-level.js';
import { trainBpe } from '../tokenizer/bpe-train.js';
import type { TextTokenizer } from '../tokenizer/text-tokenizer.js';
import type { TextDocument } from './corpus.js';
import type { TokenizerSettings } from './settings.js';

/** A tokenizer for a new run and the Hugging Face files that describe it (tokenizer.json, tokenizer_config.json). */
export interface TrainTokenizer {
  tokenizer: TextTokenizer;
  tokenizerJson: unknown;
  tokenizerConfig: unknown;
}

export const EOS_TOKEN = '<|endoftext|>';

/**
 * Byte-level (ids 0..255 are bytes, 256 is <|endoftext|>), or a byte-level BPE trained on the
 * training documents only (the validation text never shapes the vocabulary), <|endoftext|> = id 0
 * as in GPT-NeoX.
 */
export function buildTokenizer(s: TokenizerSettings, trainDocs: readonly TextDocument[]): TrainTokenizer {
  if (s.type === 'byte') {
    const t = new ByteLevelTokenizer({ specialTokens: [EOS_TOKEN] });
    return { tokenizer: t, tokenizerJson: t.toTokenizerJson(), tokenizerConfig: t.toTokenizerConfig() };
  }
  const bpe = trainBpe(
    trainDocs.map((d) => d.text),
    { vocabSize: s.vocabSize, specialTokens: [EOS_TOKEN] },
  );
  return {
    tokenizer: bpe.toTokenizer(),
    tokenizerJson: bpe.toTokenizerJson(),
    tokenizerConfig: bpe.toTokenizerConfig(),
  };
}
