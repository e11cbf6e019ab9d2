import { fail } from '../errors.js';

/**
 * What every architecture's config holds. Glossary: d d_model, e d_inner (= expand * d), n d_state,
 * k d_conv, V vocab size.
 */
export interface LmConfigCommon {
  /** d: width of the residual stream. */
  dModel: number;
  nLayer: number;
  /** V: rows of the embedding (may exceed the tokenizer's vocabulary: padding). */
  vocabSize: number;
  /** n: state size per channel (Mamba-1) or per head channel (Mamba-2). */
  dState: number;
  /** k: causal conv width. */
  dConv: number;
  expand: number;
  /** e: channels of the mixer. */
  dInner: number;
  /** in_proj / out_proj have biases. */
  useBias: boolean;
  useConvBias: boolean;
  /** eps of every RMSNorm. */
  normEps: number;
  residualInFp32: boolean;
  /** lm_head shares the embedding matrix. */
  tieEmbeddings: boolean;
  eosTokenId: number | undefined;
  bosTokenId: number | undefined;
  padTokenId: number | undefined;
  /** Where it came from: `hf` (transformers) or `mamba_ssm` (original layout). */
  layout: 'hf' | 'mamba_ssm';
}

/**
 * The one internal description of a model, whatever checkpoint layout it came from. Each field is
 * named in the paper's words. Glossary (beyond LmConfigCommon's): r dt_rank.
 */
export interface MambaConfig extends LmConfigCommon {
  arch: 'mamba';
  /** r: rank of the Δ projection. */
  dtRank: number;
}

/**
 * Mamba-2 (SSD, REFERENCE.md §2). Glossary: h heads, p head_dim (e = h·p), g n_groups (heads of a
 * group share B and C), n d_state, Q chunk length. in_proj's output is [z (e), x (e), B (g·n),
 * C (g·n), dt (h)]; the conv runs over [x, B, C] (e + 2·g·n channels).
 */
export interface Mamba2Config extends LmConfigCommon {
  arch: 'mamba2';
  /** h: heads, each with one scalar A, dt bias and D. */
  nHeads: number;
  /** p: channels per head. */
  headDim: number;
  /** g: groups of heads sharing B and C. */
  nGroups: number;
  /** Q: chunk length of the chunked SSD algorithm (changes rounding only). */
  chunkSize: number;
  /** [min, max] clamp of dt after softplus in the parallel (chunked) form; the reference's step does not clamp. */
  timeStepLimit: [number, number];
  /** Gated norm order: false is rmsnorm(y · silu(z)) (transformers always; mamba_ssm's default). */
  normBeforeGate: boolean;
  /** Columns the gated RMSNorm normalises together: e for transformers, e / g for mamba_ssm. */
  normGroupSize: number;
}

/** Every architecture mamba-ts runs; other issues extend this union. */
export type ModelConfig = MambaConfig | Mamba2Config;

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

/** Both transformers configs name the activation; Mamba and Mamba-2 are defined with SiLU only. */
function requireSilu(r: ConfigReader): void {
  const act = r.str('hidden_act', 'silu');
  if (act !== 'silu') fail('UNSUPPORTED', `${r.where}: hidden_act "${act}" is not supported (Mamba and Mamba-2 use "silu")`);
}

/** The special token ids of a transformers config. */
function hfTokenIds(r: ConfigReader): Pick<LmConfigCommon, 'eosTokenId' | 'bosTokenId' | 'padTokenId'> {
  return { eosTokenId: r.tokenId('eos_token_id'), bosTokenId: r.tokenId('bos_token_id'), padTokenId: r.tokenId('pad_token_id') };
}

/** dt_rank under `key`: "auto" (ceil(d_model / 16), the default) or a positive integer. */
function parseDtRank(r: ConfigReader, key: string, dModel: number): number {
  const rank = r.raw[key] ?? 'auto';
  if (rank === 'auto') return Math.ceil(dModel / 16);
  if (typeof rank === 'number' && Number.isInteger(rank) && rank > 0) return rank;
  return fail('CORRUPT_FILE', `${r.where}: "${key}" must be a positive integer or "auto", got ${JSON.stringify(rank)}`);
}

/** transformers' `MambaConfig` (model_type "mamba"); defaults are that class's defaults. */
export function parseHfMambaConfig(r: ConfigReader): MambaConfig {
  const dModel = r.int('hidden_size', 768);
  const expand = r.num('expand', 2);
  requireSilu(r);
  const dtRank = parseDtRank(r, 'time_step_rank', dModel);
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
    ...hfTokenIds(r),
    layout: 'hf',
  };
  validateMamba(cfg, r.where);
  return cfg;
}

/** transformers' `Mamba2Config` (model_type "mamba2"); defaults are that class's defaults (transformers 5.17). */
export function parseHfMamba2Config(r: ConfigReader): Mamba2Config {
  const dModel = r.int('hidden_size', 4096);
  const expand = r.num('expand', 2);
  requireSilu(r);
  const nHeads = r.int('num_heads', 128), headDim = r.int('head_dim', 64);
  // Mamba2Mixer uses intermediate_size = int(expand * hidden_size) and views x as (num_heads, head_dim);
  // Mamba2Config.validate_architecture requires the two to agree.
  const dInner = Math.floor(expand * dModel);
  if (dInner !== nHeads * headDim) {
    fail('CORRUPT_FILE', `${r.where}: hidden_size * expand (${dModel} * ${expand} = ${dInner}) must equal num_heads * head_dim (${nHeads} * ${headDim} = ${nHeads * headDim})`);
  }
  const cfg: Mamba2Config = {
    arch: 'mamba2',
    dModel,
    nLayer: r.int('num_hidden_layers', 64),
    vocabSize: r.int('vocab_size', 32768),
    dState: r.int('state_size', 128),
    dConv: r.int('conv_kernel', 4),
    expand,
    dInner,
    nHeads,
    headDim,
    nGroups: r.int('n_groups', 8),
    chunkSize: r.int('chunk_size', 256),
    timeStepLimit: limitPair(r, 'time_step_limit', [0, Infinity]),
    useBias: r.bool('use_bias', false),
    useConvBias: r.bool('use_conv_bias', true),
    normEps: r.num('layer_norm_epsilon', 1e-5),
    // transformers' MambaRMSNormGated multiplies by silu(gate) first and normalises over all of
    // intermediate_size, whatever n_groups is (mamba_ssm normalises per group: see parseOriginalConfig).
    normBeforeGate: false,
    normGroupSize: dInner,
    residualInFp32: r.bool('residual_in_fp32', true),
    tieEmbeddings: r.bool('tie_word_embeddings', false),
    ...hfTokenIds(r),
    layout: 'hf',
  };
  validateMamba2(cfg, r.where);
  return cfg;
}

/** A `[min, max]` pair of numbers (infinity arrives through reviveFloats). */
function limitPair(r: ConfigReader, key: string, dflt: [number, number]): [number, number] {
  const v = r.raw[key] ?? dflt;
  if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'number' || typeof v[1] !== 'number' || Number.isNaN(v[0]) || Number.isNaN(v[1])) {
    return fail('CORRUPT_FILE', `${r.where}: "${key}" must be [min, max] (two numbers), got ${JSON.stringify(r.raw[key])}`);
  }
  if (!(v[0] <= v[1])) fail('CORRUPT_FILE', `${r.where}: "${key}" must have min <= max, got [${v[0]}, ${v[1]}]`);
  return [v[0], v[1]];
}

export function validateMamba2(c: Mamba2Config, where: string): void {
  for (const k of ['dModel', 'nLayer', 'vocabSize', 'dState', 'dConv', 'dInner', 'nHeads', 'headDim', 'nGroups', 'chunkSize', 'normGroupSize'] as const) {
    if (!(c[k] > 0)) fail('CORRUPT_FILE', `${where}: ${k} must be positive, got ${c[k]}`);
  }
  if (c.nHeads % c.nGroups !== 0) fail('CORRUPT_FILE', `${where}: the ${c.nHeads} heads cannot be split into ${c.nGroups} groups (n_groups must divide num_heads)`);
  if (c.dInner % c.normGroupSize !== 0) fail('CORRUPT_FILE', `${where}: the gated norm's group size ${c.normGroupSize} does not divide d_inner ${c.dInner}`);
  if (!(c.normEps > 0)) fail('CORRUPT_FILE', `${where}: layer_norm_epsilon must be positive, got ${c.normEps}`);
}

// ---- the original mamba_ssm layout ---------------------------------------------------------------
// config.json of `state-spaces/mamba-*` and `mamba2-*` (mamba_ssm/models/config_mamba.py MambaConfig,
// built by MambaLMHeadModel): the block is Mamba (mamba_simple.py) unless ssm_cfg.layer is "Mamba2"
// (mamba2.py). mamba_ssm builds its modules with `**config` / `**ssm_cfg`, so it rejects keys it does
// not know; so does this parser, instead of ignoring something that might change the computation.

const ORIGINAL_KEYS = ['d_model', 'd_intermediate', 'n_layer', 'vocab_size', 'ssm_cfg', 'attn_layer_idx', 'attn_cfg', 'rms_norm', 'residual_in_fp32', 'fused_add_norm', 'pad_vocab_size_multiple', 'tie_embeddings'];
/** Keys of mamba_simple.Mamba / mamba2.Mamba2 that only affect initialisation or the choice of kernel. */
const INIT_ONLY_MAMBA1 = ['layer', 'dt_min', 'dt_max', 'dt_init', 'dt_scale', 'dt_init_floor', 'use_fast_path'];
const INIT_ONLY_MAMBA2 = ['layer', 'conv_init', 'A_init_range', 'dt_min', 'dt_max', 'dt_init_floor', 'use_mem_eff_path'];
/** eps of mamba_ssm's RMSNorms: create_block's norm_epsilon default, and Mamba2's RMSNormGated(eps=1e-5). */
const ORIGINAL_NORM_EPS = 1e-5;

/** The original mamba_ssm config (d_model, n_layer, ssm_cfg, ...) as a Mamba-1 or Mamba-2 config. */
export function parseOriginalConfig(r: ConfigReader): MambaConfig | Mamba2Config {
  for (const k of Object.keys(r.raw)) {
    if (!ORIGINAL_KEYS.includes(k)) fail('CORRUPT_FILE', `${r.where}: "${k}" is not a key of mamba_ssm's MambaConfig (expected some of ${ORIGINAL_KEYS.join(', ')})`);
  }
  const dInter = r.int('d_intermediate', 0);
  if (dInter > 0) fail('UNSUPPORTED', `${r.where}: d_intermediate ${dInter} adds an MLP after each mixer (mamba_ssm's GatedMLP blocks); mamba-ts runs only the pure SSM stack (d_intermediate 0)`, { key: 'd_intermediate' });
  const attn = r.raw.attn_layer_idx ?? [];
  if (!Array.isArray(attn)) fail('CORRUPT_FILE', `${r.where}: "attn_layer_idx" must be a list of layer indices, got ${JSON.stringify(attn)}`);
  if (attn.length > 0) fail('UNSUPPORTED', `${r.where}: attn_layer_idx ${JSON.stringify(attn)} makes those layers attention (a hybrid model); mamba-ts runs only SSM layers (attn_layer_idx [])`, { key: 'attn_layer_idx' });
  if (!r.bool('rms_norm', true)) fail('UNSUPPORTED', `${r.where}: rms_norm false means LayerNorm blocks; mamba-ts implements the RMSNorm blocks (rms_norm true) only`, { key: 'rms_norm' });
  r.bool('fused_add_norm', true); // a kernel choice: the fused and unfused add + norm compute the same thing
  const dModel = r.int('d_model');
  const pad = r.int('pad_vocab_size_multiple', 8);
  if (pad < 1) fail('CORRUPT_FILE', `${r.where}: pad_vocab_size_multiple must be >= 1, got ${pad}`);
  const vocab = r.int('vocab_size', 50277);
  // MambaLMHeadModel: vocab_size += pad - vocab_size % pad (the embedding and the head have the padded rows).
  const vocabSize = vocab % pad === 0 ? vocab : vocab + pad - (vocab % pad);
  const rawSsm = r.raw.ssm_cfg ?? {};
  if (typeof rawSsm !== 'object' || Array.isArray(rawSsm) || rawSsm === null) fail('CORRUPT_FILE', `${r.where}: "ssm_cfg" must be an object, got ${JSON.stringify(rawSsm)}`);
  const ssm = new ConfigReader(rawSsm as Record<string, unknown>, `${r.where} (ssm_cfg)`);
  const layer = ssm.str('layer', 'Mamba1');
  const common = {
    dModel,
    nLayer: r.int('n_layer'),
    vocabSize,
    residualInFp32: r.bool('residual_in_fp32', true),
    tieEmbeddings: r.bool('tie_embeddings', true),
    eosTokenId: undefined,
    bosTokenId: undefined,
    padTokenId: undefined,
    layout: 'mamba_ssm' as const,
  };
  if (layer === 'Mamba1') {
    const allowed = ['d_state', 'd_conv', 'expand', 'dt_rank', 'bias', 'conv_bias', ...INIT_ONLY_MAMBA1];
    checkKnownKeys(ssm, allowed, 'mamba_simple.Mamba');
    const expand = ssm.num('expand', 2);
    const dtRank = parseDtRank(ssm, 'dt_rank', dModel);
    const cfg: MambaConfig = {
      ...common,
      arch: 'mamba',
      dState: ssm.int('d_state', 16),
      dConv: ssm.int('d_conv', 4),
      expand,
      dInner: Math.floor(expand * dModel),
      dtRank,
      useBias: ssm.bool('bias', false),
      useConvBias: ssm.bool('conv_bias', true),
      normEps: ORIGINAL_NORM_EPS,
    };
    validateMamba(cfg, r.where);
    return cfg;
  }
  if (layer === 'Mamba2') {
    const allowed = ['d_state', 'd_conv', 'expand', 'headdim', 'd_ssm', 'ngroups', 'D_has_hdim', 'rmsnorm', 'norm_before_gate', 'dt_limit', 'bias', 'conv_bias', 'chunk_size', ...INIT_ONLY_MAMBA2];
    checkKnownKeys(ssm, allowed, 'mamba2.Mamba2');
    const expand = ssm.num('expand', 2);
    const dInner = Math.floor(expand * dModel);
    const headDim = ssm.int('headdim', 64);
    if (ssm.has('d_ssm') && ssm.int('d_ssm') !== dInner) {
      fail('UNSUPPORTED', `${ssm.where}: d_ssm ${ssm.int('d_ssm')} runs the SSM on part of d_inner ${dInner} and a gated MLP on the rest; mamba-ts supports d_ssm = d_inner (or absent)`, { key: 'd_ssm' });
    }
    if (ssm.bool('D_has_hdim', false)) fail('UNSUPPORTED', `${ssm.where}: D_has_hdim true (a D per channel) is not supported; mamba-ts uses one D per head`, { key: 'D_has_hdim' });
    if (!ssm.bool('rmsnorm', true)) fail('UNSUPPORTED', `${ssm.where}: rmsnorm false (y * silu(z) without the gated RMSNorm) is not supported`, { key: 'rmsnorm' });
    if (dInner % headDim !== 0) fail('CORRUPT_FILE', `${ssm.where}: d_inner ${dInner} (expand ${expand} x d_model ${dModel}) is not a multiple of headdim ${headDim}`);
    const nGroups = ssm.int('ngroups', 1);
    if (nGroups < 1 || dInner % nGroups !== 0) fail('CORRUPT_FILE', `${ssm.where}: ngroups ${nGroups} must divide d_inner ${dInner}`);
    const cfg: Mamba2Config = {
      ...common,
      arch: 'mamba2',
      dState: ssm.int('d_state', 128),
      dConv: ssm.int('d_conv', 4),
      expand,
      dInner,
      nHeads: dInner / headDim,
      headDim,
      nGroups,
      chunkSize: ssm.int('chunk_size', 256),
      timeStepLimit: limitPair(ssm, 'dt_limit', [0, Infinity]),
      useBias: ssm.bool('bias', false),
      useConvBias: ssm.bool('conv_bias', true),
      normEps: ORIGINAL_NORM_EPS,
      normBeforeGate: ssm.bool('norm_before_gate', false),
      // Mamba2: RMSNormGated(d_ssm, group_size=d_ssm // ngroups).
      normGroupSize: dInner / nGroups,
    };
    validateMamba2(cfg, r.where);
    return cfg;
  }
  return fail('UNSUPPORTED', `${ssm.where}: layer "${layer}" is not supported; mamba-ts runs "Mamba1" and "Mamba2"`, { key: 'layer' });
}

function checkKnownKeys(r: ConfigReader, allowed: readonly string[], module: string): void {
  for (const k of Object.keys(r.raw)) {
    if (!allowed.includes(k)) fail('CORRUPT_FILE', `${r.where}: "${k}" is not an argument of mamba_ssm's ${module} (known: ${allowed.join(', ')})`, { key: k });
  }
}

/** Channels of Mamba-2's conv: x, B and C. */
export function mamba2ConvDim(c: Mamba2Config): number {
  return c.dInner + 2 * c.nGroups * c.dState;
}

export function validateMamba(c: MambaConfig, where: string): void {
  for (const k of ['dModel', 'nLayer', 'vocabSize', 'dState', 'dConv', 'dInner', 'dtRank'] as const) {
    if (!(c[k] > 0)) fail('CORRUPT_FILE', `${where}: ${k} must be positive, got ${c[k]}`);
  }
  if (!(c.normEps > 0)) fail('CORRUPT_FILE', `${where}: layer_norm_epsilon must be positive, got ${c.normEps}`);
}

/**
 * Parses a config.json object into a ModelConfig, choosing the architecture from its keys:
 * `model_type` / `architectures` for transformers configs, `d_model` + `n_layer` (and
 * `ssm_cfg.layer`) for the original mamba_ssm layout. Anything else is a clear UNSUPPORTED.
 */
export function parseConfig(json: unknown, where = 'config.json'): ModelConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json)) fail('CORRUPT_FILE', `${where}: expected a JSON object`);
  const raw = reviveFloats(json) as Record<string, unknown>;
  const r = new ConfigReader(raw, where);
  const modelType = typeof raw.model_type === 'string' ? raw.model_type : undefined;
  const archs = Array.isArray(raw.architectures) ? raw.architectures.filter((a): a is string => typeof a === 'string') : [];
  if (modelType === 'mamba' || archs.includes('MambaForCausalLM') || archs.includes('MambaModel')) return parseHfMambaConfig(r);
  if (modelType === 'mamba2' || archs.includes('Mamba2ForCausalLM') || archs.includes('Mamba2Model')) return parseHfMamba2Config(r);
  if (modelType === undefined && r.has('d_model') && r.has('n_layer')) return parseOriginalConfig(r);
  const what = modelType ? `model_type "${modelType}"` : archs.length ? `architectures ${JSON.stringify(archs)}` : 'no model_type or architectures key (nor d_model and n_layer of the mamba_ssm layout)';
  return fail('UNSUPPORTED', `${where}: ${what} is not supported; mamba-ts runs Mamba (model_type "mamba"), Mamba-2 (model_type "mamba2") and the original mamba_ssm layout`, { modelType, archs });
}

/**
 * Bytes of the state of a Mamba-1 with the published models' settings (expand 2, d_state 16, d_conv 4)
 * at a given width and depth: what `info` compares a Mamba-2 state with.
 */
export function mamba1StateBytesAt(dModel: number, nLayer: number): number {
  return nLayer * 2 * dModel * (4 + 16) * 4;
}

/** Bytes of the recurrent state per sequence, f32: per layer the conv window plus the SSM state. */
export function stateBytes(c: ModelConfig): number {
  switch (c.arch) {
    case 'mamba': // conv (e, k) + ssm (e, n)
      return c.nLayer * c.dInner * (c.dConv + c.dState) * 4;
    case 'mamba2': // conv (e + 2gn, k) + ssm (h, p, n)
      return c.nLayer * (mamba2ConvDim(c) * c.dConv + c.nHeads * c.headDim * c.dState) * 4;
  }
}
