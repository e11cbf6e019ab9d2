/**
 * Writing Hugging Face tokenizer files for the byte-level BPE tokenizers mamba-ts builds (the plain
 * byte tokenizer and trained BPEs), in the layout GPT-2 and GPT-NeoX's `tokenizer.json` use, so both
 * `@huggingface/tokenizers` (JS) and the Python `tokenizers` / `transformers` load them.
 * Format reference: the serde layout of the Rust `tokenizers` crate (`tokenizer.json` version "1.0").
 */

/** One entry of `tokenizer.json`'s `added_tokens`. */
export interface HfAddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** The parts of `tokenizer.json` that a byte-level BPE writes. */
export interface HfByteLevelBpeJson {
  version: '1.0';
  truncation: null;
  padding: null;
  added_tokens: HfAddedToken[];
  normalizer: null;
  pre_tokenizer: HfByteLevelComponent;
  post_processor: HfByteLevelComponent;
  decoder: HfByteLevelComponent;
  model: {
    type: 'BPE';
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: boolean;
    vocab: Record<string, number>;
    /** `"left right"`: byte-level tokens never hold a raw space, so the old string form is unambiguous. */
    merges: string[];
  };
}

/** `use_regex` is left out: it defaults to true (GPT-2's pattern splits words) and older readers lack it. */
export interface HfByteLevelComponent {
  type: 'ByteLevel';
  add_prefix_space: boolean;
  trim_offsets: boolean;
}

/** The `tokenizer_config.json` fields mamba-ts writes next to a `tokenizer.json`. */
export interface HfTokenizerConfig {
  tokenizer_class: 'PreTrainedTokenizerFast';
  clean_up_tokenization_spaces: boolean;
  add_bos_token: boolean;
  add_eos_token: boolean;
  /** null: no such token (transformers reads it so; absent would let a GPT-2 style default apply). */
  bos_token: string | null;
  eos_token: string | null;
  pad_token: string | null;
}

export interface ByteLevelBpeParts {
  /** Token id -> token in the byte-level alphabet (ids must be 0..n-1 without gaps). */
  readonly vocab: readonly string[];
  /** Merge rules in priority order, each as the two tokens it joins. */
  readonly merges: readonly (readonly [string, string])[];
  /** Special tokens (they must also appear in `vocab`); matched whole in input text, never split. */
  readonly specialTokens: readonly string[];
}

/** Builds a GPT-2/GPT-NeoX style byte-level BPE `tokenizer.json` object. */
export function byteLevelBpeTokenizerJson(parts: ByteLevelBpeParts): HfByteLevelBpeJson {
  const vocab: Record<string, number> = {};
  parts.vocab.forEach((token, id) => {
    vocab[token] = id;
  });
  const addedTokens = parts.specialTokens.map((content) => {
    const id = vocab[content];
    if (id === undefined) throw new Error(`special token ${JSON.stringify(content)} is missing from the vocabulary`);
    return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  });
  // Field for field as in GPT-NeoX-20B's file, which every version of the readers loads: no prefix
  // space (text is encoded as given), offsets trimmed (only affects offsets, unused here).
  const byteLevel = (): HfByteLevelComponent => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: byteLevel(),
    post_processor: byteLevel(),
    decoder: byteLevel(),
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      vocab,
      merges: parts.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

export interface TokenizerConfigRoles {
  readonly bosToken?: string | undefined;
  readonly eosToken?: string | undefined;
  readonly padToken?: string | undefined;
  readonly addBosToken?: boolean;
}

/** The `tokenizer_config.json` for a byte-level tokenizer mamba-ts wrote: roles, no cleanup of spaces. */
export function byteLevelTokenizerConfig(roles: TokenizerConfigRoles): HfTokenizerConfig {
  const config: HfTokenizerConfig = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    // Decoding must give back the exact text, so transformers' space clean-up stays off.
    clean_up_tokenization_spaces: false,
    add_bos_token: roles.addBosToken ?? false,
    add_eos_token: false,
    bos_token: roles.bosToken ?? null,
    eos_token: roles.eosToken ?? null,
    pad_token: roles.padToken ?? null,
  };
  return config;
}
