/**
 * Streaming detokenisation: turning token ids into text one id at a time, as they are generated, so
 * that the pieces concatenate to exactly `tokenizer.decode(allIds)`.
 *
 * Decoding each id alone is wrong in two ways:
 * - a byte-level BPE token can hold part of a UTF-8 character (an emoji's 4 bytes can be spread over
 *   3 tokens); decoding the part gives U+FFFD;
 * - some decoders depend on context (SentencePiece's Metaspace drops the leading space of the first
 *   token of a text; transformers' space clean-up looks at neighbouring characters).
 *
 * The method (text-generation-inference's `decode_token` with prefix/read offsets; transformers'
 * TextStreamer is a coarser form of it): keep a short window of ids, starting with those of the
 * previous emission as left context; `read` marks where the not-yet-emitted ids start. After each new
 * id, decode window[0, read) and the whole window; if the second is longer and does not end in U+FFFD
 * (an incomplete character: wait for its remaining bytes), emit what it adds and start a new window
 * at `read`. Emitting only at such points keeps every window start at a clean UTF-8 boundary, so
 * decoding from there never changes earlier text.
 *
 * The space clean-up (`" ."` -> `"."`) can join text across emissions, so the window is decoded without
 * it and the emitted text goes through a streaming clean-up that holds back a possible pattern start.
 */
import { fail } from '../errors.js';
import { CleanUpStream } from './cleanup.js';
import type { TextTokenizer } from './text-tokenizer.js';

export interface DetokenizeStreamOptions {
  /** Leave special tokens out of the text, as `decode(ids, {skipSpecialTokens: true})`. Default false. */
  readonly skipSpecialTokens?: boolean;
  /** Clean up tokenization spaces; default: the tokenizer's own setting, as `decode` does. */
  readonly cleanUpTokenizationSpaces?: boolean;
}

const REPLACEMENT_CHARACTER = '\uFFFD';

export class DetokenizeStream {
  /**
   * window[0, read) are the ids of the previous emission, kept as left context (TGI's prefix_offset is
   * always 0 here because older ids are dropped); window[read, end) are ids not yet emitted.
   */
  private window: number[] = [];
  private read = 0;
  private readonly skipSpecialTokens: boolean;
  private readonly cleanUp: CleanUpStream | undefined;

  constructor(
    private readonly tokenizer: TextTokenizer,
    options: DetokenizeStreamOptions = {},
  ) {
    this.skipSpecialTokens = options.skipSpecialTokens ?? false;
    this.cleanUp =
      (options.cleanUpTokenizationSpaces ?? tokenizer.cleanUpTokenizationSpaces) ? new CleanUpStream() : undefined;
  }

  /** Adds one generated id; returns the text it completes (often '', e.g. mid-character). */
  push(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.tokenizer.vocabSize) {
      fail(
        'TOKEN_OUT_OF_RANGE',
        `token id ${id} is not a token of this tokenizer (ids are integers in [0, ${this.tokenizer.vocabSize}))`,
        {
          id,
          vocabSize: this.tokenizer.vocabSize,
        },
      );
    }
    this.window.push(id);
    let before: string;
    let after: string;
    try {
      before = this.decode(this.read);
      after = this.decode(this.window.length);
    } catch (e) {
      this.window.pop(); // e.g. an id in range that names no token: leave the stream as it was
      throw e;
    }
    if (after.length <= before.length || after.endsWith(REPLACEMENT_CHARACTER) || !after.startsWith(before)) return '';
    // Keep only what the next decode needs: the ids just emitted become the left context.
    this.window = this.window.slice(this.read);
    this.read = this.window.length;
    return this.emit(after.slice(before.length));
  }

  /** Adds several ids; returns the text they complete. */
  pushAll(ids: readonly number[]): string {
    let text = '';
    for (const id of ids) text += this.push(id);
    return text;
  }

  /**
   * Ends the text: returns everything held back (an incomplete character decodes to U+FFFD, as in
   * `decode`). The stream is then empty and can take a new text.
   */
  flush(): string {
    const before = this.decode(this.read);
    const after = this.decode(this.window.length);
    let text = this.emit(after.slice(before.length));
    if (this.cleanUp !== undefined) text += this.cleanUp.end();
    this.window = [];
    this.read = 0;
    return text;
  }

  /** Text of window[0, end). */
  private decode(end: number): string {
    if (end === 0) return '';
    return this.tokenizer.decode(this.window.slice(0, end), {
      skipSpecialTokens: this.skipSpecialTokens,
      cleanUpTokenizationSpaces: false,
    });
  }

  private emit(text: string): string {
    return this.cleanUp === undefined ? text : this.cleanUp.push(text);
  }
}
