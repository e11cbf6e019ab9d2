import { fail } from '../errors.js';

/**
 * The one internal description of a model, whatever checkpoint layout it came from. Each field is
 * named in the paper's words; `source` keeps the original config for `info` and for saving.
 *
 * Glossary: d d_model, e d_inner (= expand * d), n d_state, k d_conv, r dt_rank, V vocab size.
 */
export interface MambaConfig {
  arch: 'mamba';
  /** d: width of the residual stream. */
  dModel: number;
  nLayer: number;
  /** V: rows of the embedding (may exceed the tokenizer's vocabulary: padding). */
  vocabSize: number;
  /** n: state size per channel. */
  dState: number;
  /** k: causal conv width. */
  dConv: number;
  expand: number;
  /** e: channels of the mixer. */
  dInner: number;
  /** r: rank of the Δ projection. */
  dtRank: number;
  /** in_proj / out_proj have biases. */
  useBias: boolean;
  useConvBias: boolean;
  normEps: number;
  residualInFp32: boolean;
  /** lm_head shares the embedding matrix. */
  tieEmbeddings: boolean;
  eosTokenId: number | undefined;
  bosTokenId: number | undefined;
  padTokenId: number | undefined;
  /** Where it came from: `hf` (transformers' MambaForCausalLM) or `mamba_ssm` (original layout). */
  layout: 'hf' | 'mamba_ssm';
}

/** Every architecture mamba-ts runs; other issues extend this union (Mamba-2, ...). */
export type ModelConfig = MambaConfig;

/** Converts transformers' JSON encodings of non-finite floats (`{"__float__": "Infinity"}`) to numbers. */
export function reviveFloats(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reviveFloats);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === '__float__' && typeof o.__float__ === 'string') {
      const s = o.__float__;
      if (s === 'Infinity') return Infinity;
      if (s === '-Infinity') return -Infinity;
      if (s === 'NaN') return NaN;
      const n = Number(s);
      if (Number.isNaN(n)) fail('CORRUPT_FILE', `config.json: unreadable float ${JSON.stringify(s)}`);
      return n;
    }
    const out: Record<string, unknown> = {};
    for (const k of keys) out[k] = reviveFloats(o[k]);
    return out;
  }
  return v;
}

/** Reads config fields with type checks that name the key and the file. */
export class ConfigReader {
  constructor(readonly raw: Record<string, unknown>, readonly where: string) {}

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  int(key: string, dflt?: number): number {
    const v = this.raw[key] ?? dflt;
    if (v === undefined) fail('CORRUPT_FILE', `${this.where}: missing required key "${key}" (an integer)`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail('CORRUPT_FILE', `${this.where}: "${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
    return v;
  }

  num(key: string, dflt?: number): number {
    const v = this.raw[key] ?? dflt;
    if (v === undefined) fail('CORRUPT_FILE', `${this.where}: missing required key "${key}" (a number)`);
    if (typeof v !== 'number') fail('CORRUPT_FILE', `${this.where}: "${key}" must be a number, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.raw[key] ?? dflt;
    if (typeof v !== 'boolean') fail('CORRUPT_FILE', `${this.where}: "${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  str(key: string, dflt?: string): string {
    const v = this.raw[key] ?? dflt;
    if (typeof v !== 'string') fail('CORRUPT_FILE', `${this.where}: "${key}" must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  /** A token id, or a list of them (first taken), or absent. */
  tokenId(key: string): number | undefined {
    const v = this.raw[key];
    if (v === undefined || v === null) return undefined;
    const id = Array.isArray(v) ? v[0] : v;
    if (typeof id !== 'number' || !Number.isInteger(id)) fail('CORRUPT_FILE', `${this.where}: "${key}" must be a token id, got ${JSON.stringify(v)}`);
    return id;
  }
}

/** transformers' `MambaConfig` (model_type "mamba"); defaults are that class's defaults. */
export function parseHfMambaConfig(r: ConfigReader): MambaConfig {
  const dModel = r.int('hidden_size', 768);
  const expand = r.num('expand', 2);
  const act = r.str('hidden_act', 'silu');
  if (act !== 'silu') fail('UNSUPPORTED', `${r.where}: hidden_act "${act}" is not supported (Mamba uses "silu")`);
  const rank = r.raw.time_step_rank ?? 'auto';
  let dtRank: number;
  if (rank === 'auto') dtRank = Math.ceil(dModel / 16);
  else if (typeof rank === 'number' && Number.isInteger(rank) && rank > 0) dtRank = rank;
  else return fail('CORRUPT_FILE', `${r.where}: "time_step_rank" must be a positive integer or "auto", got ${JSON.stringify(rank)}`);
  const cfg: MambaConfig = {
    arch: 'mamba',
    dModel,
    nLayer: r.int('num_hidden_layers', 32),
    vocabSize: r.int('vocab_size', 50280),
    dState: r.int('state_size', 16),
    dConv: r.int('conv_kernel', 4),
    expand,
    // transformers sets intermediate_size = int(expand * hidden_size), but an explicit key in
    // config.json is applied after that by PretrainedConfig (kwargs), so the key wins.
    dInner: r.has('intermediate_size') ? r.int('intermediate_size') : Math.floor(expand * dModel),
    dtRank,
    useBias: r.bool('use_bias', true),
    useConvBias: r.bool('use_conv_bias', true),
    normEps: r.num('layer_norm_epsilon', 1e-5),
    residualInFp32: r.bool('residual_in_fp32', true),
    tieEmbeddings: r.bool('tie_word_embeddings', true),
    eosTokenId: r.tokenId('eos_token_id'),
    bosTokenId: r.tokenId('bos_token_id'),
    padTokenId: r.tokenId('pad_token_id'),
    layout: 'hf',
  };
  validateMamba(cfg, r.where);
  return cfg;
}

export function validateMamba(c: MambaConfig, where: string): void {
  for (const k of ['dModel', 'nLayer', 'vocabSize', 'dState', 'dConv', 'dInner', 'dtRank'] as const) {
    if (!(c[k] > 0)) fail('CORRUPT_FILE', `${where}: ${k} must be positive, got ${c[k]}`);
  }
  if (!(c.normEps > 0)) fail('CORRUPT_FILE', `${where}: layer_norm_epsilon must be positive, got ${c.normEps}`);
}

/**
 * Parses a config.json object into a ModelConfig, choosing the architecture from its keys:
 * `model_type` / `architectures` for transformers configs. Anything else is a clear UNSUPPORTED.
 */
export function parseConfig(json: unknown, where = 'config.json'): ModelConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json)) fail('CORRUPT_FILE', `${where}: expected a JSON object`);
  const raw = reviveFloats(json) as Record<string, unknown>;
  const r = new ConfigReader(raw, where);
  const modelType = typeof raw.model_type === 'string' ? raw.model_type : undefined;
  const archs = Array.isArray(raw.architectures) ? raw.architectures.filter((a): a is string => typeof a === 'string') : [];
  if (modelType === 'mamba' || archs.includes('MambaForCausalLM') || archs.includes('MambaModel')) return parseHfMambaConfig(r);
  const what = modelType ? `model_type "${modelType}"` : archs.length ? `architectures ${JSON.stringify(archs)}` : 'no model_type or architectures key';
  return fail('UNSUPPORTED', `${where}: ${what} is not supported; mamba-ts runs Mamba (model_type "mamba")`, { modelType, archs });
}

/** Bytes of the recurrent state per sequence, f32: per layer conv (e x k) + SSM (e x n). */
export function stateBytes(c: ModelConfig): number {
  return c.nLayer * c.dInner * (c.dConv + c.dState) * 4;
}
