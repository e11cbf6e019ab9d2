/**
 * What generation, training and the CLI need from a tokenizer, whichever kind it is (a Hugging Face
 * `tokenizer.json`, or mamba-ts's own byte-level tokenizer).
 */

export interface EncodeOptions {
  /**
   * Add the tokens the tokenizer puts around a text (BOS/EOS as `tokenizer_config.json`'s
   * `add_bos_token`/`add_eos_token` or the post-processor say). Default true, as in transformers.
   * Special tokens written in the text itself are always recognised.
   */
  readonly addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave special tokens (EOS, padding, ...) out of the text. Default false. */
  readonly skipSpecialTokens?: boolean;
  /**
   * Apply transformers' `clean_up_tokenization` (`" ."` -> `"."`, `" n't"` -> `"n't"`, ...). Default: the
   * tokenizer's own setting (`cleanUpTokenizationSpaces`).
   */
  readonly cleanUpTokenizationSpaces?: boolean;
}

export interface TextTokenizer {
  /** Number of token ids: every id in [0, vocabSize) has a token. */
  readonly vocabSize: number;
  readonly eosTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  /** Ids that end generation: EOS plus any further `eos_token_id` of `generation_config.json`. */
  readonly stopTokenIds: readonly number[];
  /** Ids of the special tokens (those `skipSpecialTokens` leaves out), ascending. */
  readonly specialTokenIds: readonly number[];
  /** Whether `decode` cleans up tokenization spaces unless told otherwise. */
  readonly cleanUpTokenizationSpaces: boolean;

  encode(text: string, options?: EncodeOptions): number[];
  /** Throws TOKEN_OUT_OF_RANGE for an id outside [0, vocabSize). */
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** The token's vocabulary string (byte-level alphabet for BPE tokens), or undefined for an unknown id. */
  idToToken(id: number): string | undefined;
  tokenToId(token: string): number | undefined;
}
