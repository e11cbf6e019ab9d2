/**
 * Which tokens play the BOS/EOS/PAD roles, and whether encoding adds BOS/EOS, from the files a
 * Hugging Face model ships next to `tokenizer.json`:
 * - `tokenizer_config.json`: `bos_token`, `eos_token`, `pad_token` (a string, or an AddedToken-like
 *   object `{content, ...}` / `{"__type": "AddedToken", content, ...}`), `add_bos_token`,
 *   `add_eos_token`, `clean_up_tokenization_spaces`;
 * - `special_tokens_map.json`: the same role fields, consulted when tokenizer_config lacks one;
 * - `generation_config.json`: `bos_token_id`, `eos_token_id` (a number or a list), `pad_token_id`,
 *   consulted last; its extra EOS ids also stop generation.
 * A role set to null is explicitly absent. When no file mentions BOS/EOS and the vocabulary has
 * `<|endoftext|>`, that token takes the role, as transformers' GPT-2 and GPT-NeoX tokenizer classes
 * default to (Mamba uses GPT-NeoX's tokenizer).
 */
import { fail } from '../errors.js';

export type Role = 'bos' | 'eos' | 'pad';

export interface SpecialTokenSources {
  readonly tokenizerConfig: Record<string, unknown>;
  readonly specialTokensMap: Record<string, unknown>;
  readonly generationConfig: Record<string, unknown>;
}

export interface ResolvedSpecialTokens {
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly stopTokenIds: readonly number[];
  /** `add_bos_token` / `add_eos_token` when the config sets them, else undefined (post-processor decides). */
  readonly addBosToken: boolean | undefined;
  readonly addEosToken: boolean | undefined;
  readonly cleanUpTokenizationSpaces: boolean | undefined;
}

/** The default GPT-2 / GPT-NeoX end-of-text token. */
const ENDOFTEXT = '<|endoftext|>';

/** A JSON object read from one of the files, or {} when the file is absent. */
export function asConfigObject(value: unknown, file: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    fail('CORRUPT_FILE', `${file} must hold a JSON object, got ${Array.isArray(value) ? 'an array' : typeof value}`, {
      file,
    });
  }
  return value as Record<string, unknown>;
}

/** A role token as written in tokenizer_config / special_tokens_map: a string or `{content: string}`. */
function tokenContent(value: unknown, field: string, file: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && !Array.isArray(value)) {
    const content = (value as Record<string, unknown>)['content'];
    if (typeof content === 'string') return content;
  }
  fail(
    'CORRUPT_FILE',
    `${file}: ${field} must be a token string or an object with a string "content", got ${JSON.stringify(value)}`,
    {
      file,
      field,
    },
  );
}

function optionalBoolean(config: Record<string, unknown>, field: string, file: string): boolean | undefined {
  const value = config[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') {
    fail('CORRUPT_FILE', `${file}: ${field} must be true or false, got ${JSON.stringify(value)}`, { file, field });
  }
  return value;
}

/** generation_config ids: a number or a list of numbers. */
function generationIds(config: Record<string, unknown>, field: string): number[] {
  const value = config[field];
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  for (const id of list) {
    if (!Number.isInteger(id) || (id as number) < 0) {
      fail(
        'CORRUPT_FILE',
        `generation_config.json: ${field} must be a token id or a list of token ids, got ${JSON.stringify(value)}`,
        {
          file: 'generation_config.json',
          field,
        },
      );
    }
  }
  return list as number[];
}

export function resolveSpecialTokens(
  sources: SpecialTokenSources,
  tokenToId: (token: string) => number | undefined,
  vocabSize: number,
): ResolvedSpecialTokens {
  const roleId = (role: Role): number | undefined => {
    const field = `${role}_token`;
    for (const [config, file] of [
      [sources.tokenizerConfig, 'tokenizer_config.json'],
      [sources.specialTokensMap, 'special_tokens_map.json'],
    ] as const) {
      if (config[field] === null) return undefined; // explicitly none (e.g. `"pad_token": null`)
      const content = tokenContent(config[field], field, file);
      if (content === undefined) continue;
      const id = tokenToId(content);
      if (id === undefined) {
        fail(
          'CORRUPT_FILE',
          `${file}: ${field} ${JSON.stringify(content)} is not in tokenizer.json's vocabulary or added tokens`,
          {
            file,
            field,
            token: content,
          },
        );
      }
      return id;
    }
    if (sources.generationConfig[`${role}_token_id`] === null) return undefined;
    const fromGeneration = generationIds(sources.generationConfig, `${role}_token_id`)[0];
    if (fromGeneration !== undefined) {
      if (fromGeneration >= vocabSize) {
        fail(
          'CORRUPT_FILE',
          `generation_config.json: ${role}_token_id ${fromGeneration} is outside the tokenizer's [0, ${vocabSize})`,
          {
            file: 'generation_config.json',
            field: `${role}_token_id`,
          },
        );
      }
      return fromGeneration;
    }
    return role === 'pad' ? undefined : tokenToId(ENDOFTEXT);
  };

  const eosTokenId = roleId('eos');
  const stop = new Set<number>();
  if (eosTokenId !== undefined) stop.add(eosTokenId);
  // Kept even past the tokenizer's vocabulary: a model's (padded) vocabulary can be larger.
  for (const id of generationIds(sources.generationConfig, 'eos_token_id')) stop.add(id);

  const file = 'tokenizer_config.json';
  return {
    bosTokenId: roleId('bos'),
    eosTokenId,
    padTokenId: roleId('pad'),
    stopTokenIds: [...stop],
    addBosToken: optionalBoolean(sources.tokenizerConfig, 'add_bos_token', file),
    addEosToken: optionalBoolean(sources.tokenizerConfig, 'add_eos_token', file),
    cleanUpTokenizationSpaces: optionalBoolean(sources.tokenizerConfig, 'clean_up_tokenization_spaces', file),
  };
}
