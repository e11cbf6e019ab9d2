/**
 * A Hugging Face tokenizer (`tokenizer.json` plus its companion config files), run by
 * `@huggingface/tokenizers` (pure JS, so it works in browsers too), with the special-token roles and
 * options of transformers' `PreTrainedTokenizerFast`.
 *
 * Mamba checkpoints use GPT-NeoX-20B's byte-level BPE: EOS is `<|endoftext|>` (id 0), no BOS is added.
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { fail, isMambaError } from '../errors.js';
import { cleanUpTokenization } from './cleanup.js';
import { checkJsonDepth, checkTokenizerJsonLimits } from './limits.js';
import { useLinearPatterns } from './linear-regex.js';
import { asConfigObject, resolveSpecialTokens } from './special-tokens.js';
import type { DecodeOptions, EncodeOptions, TextTokenizer } from './text-tokenizer.js';

export interface TokenizerCompanions {
  /** Parsed `special_tokens_map.json`. */
  readonly specialTokensMap?: unknown;
  /** Parsed `generation_config.json`. */
  readonly generationConfig?: unknown;
  /** Where `tokenizer.json` came from (a path or URL), for error messages. */
  readonly source?: string;
}

/** Files read beside `tokenizer.json` when present (Node: loadTokenizer; browsers: loadModelFromUrl). */
export const TOKENIZER_COMPANION_FILES = [
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
] as const;

export class Tokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly stopTokenIds: readonly number[];
  readonly specialTokenIds: readonly number[];
  readonly cleanUpTokenizationSpaces: boolean;
  private readonly hf: HfTokenizer;
  /** `add_bos_token` / `add_eos_token` from tokenizer_config; undefined leaves it to the post-processor. */
  private readonly addBosToken: boolean | undefined;
  private readonly addEosToken: boolean | undefined;

  /**
   * @param tokenizerJson parsed `tokenizer.json`
   * @param tokenizerConfig parsed `tokenizer_config.json`, if the model has one
   */
  constructor(tokenizerJson: unknown, tokenizerConfig?: unknown, companions: TokenizerCompanions = {}) {
    const file = companions.source ?? 'tokenizer.json';
    const json = asConfigObject(tokenizerJson, file);
    const model = json['model'];
    if (typeof model !== 'object' || model === null || typeof (model as Record<string, unknown>)['type'] !== 'string') {
      fail(
        'CORRUPT_FILE',
        `${file} is not a Hugging Face tokenizer: it needs a "model" object with a "type" (BPE, WordPiece, Unigram)`,
        {
          file,
        },
      );
    }
    checkTokenizerJsonLimits(json, file);
    checkJsonDepth(tokenizerConfig, 'tokenizer_config.json');
    checkJsonDepth(companions.specialTokensMap, 'special_tokens_map.json');
    checkJsonDepth(companions.generationConfig, 'generation_config.json');
    const config = asConfigObject(tokenizerConfig, 'tokenizer_config.json');
    this.hf = createHfTokenizer(json, config, file);
    useLinearPatterns(this.hf as unknown as Parameters<typeof useLinearPatterns>[0], file);

    const vocab = this.hf.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    if (this.vocabSize === 0) fail('CORRUPT_FILE', `${file} has an empty vocabulary`, { file });

    const roles = resolveSpecialTokens(
      {
        tokenizerConfig: config,
        specialTokensMap: asConfigObject(companions.specialTokensMap, 'special_tokens_map.json'),
        generationConfig: asConfigObject(companions.generationConfig, 'generation_config.json'),
      },
      (token) => this.hf.token_to_id(token),
      this.vocabSize,
    );
    this.bosTokenId = roles.bosTokenId;
    this.eosTokenId = roles.eosTokenId;
    this.padTokenId = roles.padTokenId;
    this.stopTokenIds = roles.stopTokenIds;
    this.addBosToken = roles.addBosToken;
    this.addEosToken = roles.addEosToken;
    // transformers defaults to false since v4.45 (tokenizers.js to true); false keeps decode(encode(x)) == x.
    this.cleanUpTokenizationSpaces = roles.cleanUpTokenizationSpaces ?? false;
    this.specialTokenIds = [...this.hf.get_added_tokens_decoder().values()]
      .filter((t) => t.special)
      .map((t) => t.id)
      .sort((a, b) => a - b);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') fail('BAD_ARGUMENT', `encode expects a string, got ${typeof text}`);
    const addSpecial = options.addSpecialTokens ?? true;
    const configured = this.addBosToken !== undefined || this.addEosToken !== undefined;
    // With add_bos_token/add_eos_token in the config, transformers rebuilds the post-processor as
    // `[bos] $A [eos]`; so do we, instead of the template in tokenizer.json.
    const ids = this.hf.encode(text, { add_special_tokens: addSpecial && !configured }).ids;
    for (const id of ids) {
      if (!Number.isInteger(id)) {
        fail(
          'UNSUPPORTED',
          `the tokenizer could not map part of ${JSON.stringify(text.slice(0, 40))} to a token (no unk_token)`,
        );
      }
    }
    if (addSpecial && configured) {
      if (this.addBosToken === true) {
        if (this.bosTokenId === undefined)
          fail('CORRUPT_FILE', 'tokenizer_config.json sets add_bos_token but names no bos_token');
        ids.unshift(this.bosTokenId);
      }
      if (this.addEosToken === true) {
        if (this.eosTokenId === undefined)
          fail('CORRUPT_FILE', 'tokenizer_config.json sets add_eos_token but names no eos_token');
        ids.push(this.eosTokenId);
      }
    }
    return ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (!Array.isArray(ids)) fail('BAD_ARGUMENT', `decode expects an array of token ids, got ${typeof ids}`);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.hf.id_to_token(id) === undefined) {
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
    }
    if (ids.length === 0) return '';
    const text = this.hf.decode(ids as number[], {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: false,
    });
    return (options.cleanUpTokenizationSpaces ?? this.cleanUpTokenizationSpaces) ? cleanUpTokenization(text) : text;
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize ? this.hf.id_to_token(id) : undefined;
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }
}

/**
 * tokenizers.js wants every component key present and an `added_tokens` list; files written by old
 * tools can lack them (null and [] mean "none"). Its own errors become MambaErrors.
 */
function createHfTokenizer(json: Record<string, unknown>, config: Record<string, unknown>, file: string): HfTokenizer {
  const complete = {
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    added_tokens: [],
    ...json,
  };
  if (!Array.isArray(complete.added_tokens)) {
    fail('CORRUPT_FILE', `${file}: "added_tokens" must be a list`, { file });
  }
  try {
    return new HfTokenizer(complete, config);
  } catch (e) {
    if (isMambaError(e)) throw e;
    const message = e instanceof Error ? e.message : String(e);
    if (/^Unknown \w+ type/.test(message)) {
      fail(
        'UNSUPPORTED',
        `${file} uses a tokenizer component that @huggingface/tokenizers does not implement: ${message}`,
        { file },
      );
    }
    fail('CORRUPT_FILE', `${file} is not a valid Hugging Face tokenizer: ${message}`, { file });
  }
}
