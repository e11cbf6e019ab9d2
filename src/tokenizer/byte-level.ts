/**
 * The byte tokenizer for training small models: ids 0..255 are the UTF-8 bytes of the text, ids 256..
 * are special tokens (by default 256 = `<|endoftext|>`, the EOS). Any text encodes, nothing needs
 * training, and the vocabulary is tiny.
 *
 * It is a byte-level BPE without merges, so it can write itself as a Hugging Face `tokenizer.json`
 * (vocabulary: GPT-2's byte alphabet in byte order, so a token's id is its byte) that
 * `@huggingface/tokenizers` and Python `tokenizers` load and run with the same ids.
 */
import { fail } from '../errors.js';
import { BYTE_TO_UNICODE, UNICODE_TO_BYTE } from './gpt2-bytes.js';
import { byteLevelBpeTokenizerJson, byteLevelTokenizerConfig } from './hf-json.js';
import type { HfByteLevelBpeJson, HfTokenizerConfig } from './hf-json.js';
import type { DecodeOptions, EncodeOptions, TextTokenizer } from './text-tokenizer.js';

export interface ByteLevelTokenizerOptions {
  /** Special tokens, given ids 256, 257, ... in this order. Default `['<|endoftext|>']`. */
  readonly specialTokens?: readonly string[];
  /** The EOS token (one of specialTokens). Default: the first special token. */
  readonly eosToken?: string;
  readonly bosToken?: string;
  readonly padToken?: string;
  /** Whether `encode` puts BOS first (when addSpecialTokens). Default false. */
  readonly addBosToken?: boolean;
}

const BYTE_COUNT = 256;

export class ByteLevelTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly stopTokenIds: readonly number[];
  readonly specialTokenIds: readonly number[];
  readonly cleanUpTokenizationSpaces = false;
  readonly specialTokens: readonly string[];
  private readonly addBosToken: boolean;
  private readonly specialIds: ReadonlyMap<string, number>;
  private readonly utf8 = new TextEncoder();
  // ignoreBOM keeps a leading U+FEFF as text, as the Hugging Face ByteLevel decoder does.
  private readonly utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

  constructor(options: ByteLevelTokenizerOptions = {}) {
    const specials = options.specialTokens ?? ['<|endoftext|>'];
    const ids = new Map<string, number>();
    for (const token of specials) {
      if (typeof token !== 'string' || token.length === 0) {
        fail('BAD_ARGUMENT', `specialTokens must be non-empty strings, got ${JSON.stringify(token)}`, {
          option: 'specialTokens',
        });
      }
      if (UNICODE_TO_BYTE.has(token)) {
        fail(
          'BAD_ARGUMENT',
          `special token ${JSON.stringify(token)} is a byte token's name in the byte-level alphabet; use a longer name`,
          {
            option: 'specialTokens',
          },
        );
      }
      if (ids.has(token))
        fail('BAD_ARGUMENT', `special token ${JSON.stringify(token)} is listed twice`, { option: 'specialTokens' });
      ids.set(token, BYTE_COUNT + ids.size);
    }
    this.specialTokens = [...specials];
    this.specialIds = ids;
    this.vocabSize = BYTE_COUNT + ids.size;
    this.specialTokenIds = [...ids.values()];
    const roleId = (token: string | undefined, option: string): number | undefined => {
      if (token === undefined) return undefined;
      const id = ids.get(token);
      if (id === undefined) {
        fail(
          'BAD_ARGUMENT',
          `${option} ${JSON.stringify(token)} is not one of specialTokens ${JSON.stringify(specials)}`,
          { option },
        );
      }
      return id;
    };
    this.eosTokenId = roleId(options.eosToken ?? specials[0], 'eosToken');
    this.bosTokenId = roleId(options.bosToken, 'bosToken');
    this.padTokenId = roleId(options.padToken, 'padToken');
    this.stopTokenIds = this.eosTokenId === undefined ? [] : [this.eosTokenId];
    this.addBosToken = options.addBosToken ?? false;
    if (this.addBosToken && this.bosTokenId === undefined) {
      fail('BAD_ARGUMENT', 'addBosToken needs a bosToken', { option: 'addBosToken' });
    }
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') fail('BAD_ARGUMENT', `encode expects a string, got ${typeof text}`);
    const ids: number[] = [];
    if ((options.addSpecialTokens ?? true) && this.addBosToken) ids.push(this.bosTokenId!);
    let plainStart = 0;
    const pushBytes = (end: number): void => {
      if (end > plainStart) for (const b of this.utf8.encode(text.slice(plainStart, end))) ids.push(b);
    };
    // Special tokens written in the text are recognised (leftmost, longest first), as Hugging Face
    // added tokens are.
    for (let i = 0; i < text.length;) {
      const special = this.specialAt(text, i);
      if (special === undefined) {
        i++;
        continue;
      }
      pushBytes(i);
      ids.push(this.specialIds.get(special)!);
      i += special.length;
      plainStart = i;
    }
    pushBytes(text.length);
    return ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (!Array.isArray(ids)) fail('BAD_ARGUMENT', `decode expects an array of token ids, got ${typeof ids}`);
    const skip = options.skipSpecialTokens ?? false;
    let text = '';
    let bytes: number[] = [];
    // Bytes between special tokens are decoded together, so characters split over ids come back whole;
    // a special token ends a run of bytes, as in the Hugging Face ByteLevel decoder.
    const flushBytes = (): void => {
      if (bytes.length > 0) text += this.utf8Decoder.decode(new Uint8Array(bytes));
      bytes = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        fail(
          'TOKEN_OUT_OF_RANGE',
          `token id ${id} at position ${i} is not a token of this tokenizer (ids are integers in [0, ${this.vocabSize}))`,
          {
            id,
            position: i,
            vocabSize: this.vocabSize,
          },
        );
      }
      if (id < BYTE_COUNT) {
        bytes.push(id);
      } else if (!skip) {
        flushBytes();
        text += this.specialTokens[id - BYTE_COUNT];
      }
    }
    flushBytes();
    return text;
  }

  idToToken(id: number): string | undefined {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) return undefined;
    return id < BYTE_COUNT ? BYTE_TO_UNICODE[id] : this.specialTokens[id - BYTE_COUNT];
  }

  tokenToId(token: string): number | undefined {
    return this.specialIds.get(token) ?? UNICODE_TO_BYTE.get(token);
  }

  /** This tokenizer as a Hugging Face `tokenizer.json` object (a byte-level BPE with no merges). */
  toTokenizerJson(): HfByteLevelBpeJson {
    return byteLevelBpeTokenizerJson({
      vocab: [...BYTE_TO_UNICODE, ...this.specialTokens],
      merges: [],
      specialTokens: this.specialTokens,
    });
  }

  /** The `tokenizer_config.json` to write beside it (roles, no BOS unless asked, no space clean-up). */
  toTokenizerConfig(): HfTokenizerConfig {
    return byteLevelTokenizerConfig({
      bosToken: this.bosTokenId === undefined ? undefined : this.idToToken(this.bosTokenId),
      eosToken: this.eosTokenId === undefined ? undefined : this.idToToken(this.eosTokenId),
      padToken: this.padTokenId === undefined ? undefined : this.idToToken(this.padTokenId),
      addBosToken: this.addBosToken,
    });
  }

  /** The special token starting at text[i], longest first, if any. */
  private specialAt(text: string, i: number): string | undefined {
    let found: string | undefined;
    for (const token of this.specialTokens) {
      if ((found === undefined || token.length > found.length) && text.startsWith(token, i)) found = token;
    }
    return found;
  }
}
