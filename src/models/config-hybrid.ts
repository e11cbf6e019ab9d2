import { fail } from '../errors.js';
import type { MlpActivation } from '../mixers/mlp.js';
import type { MoeRouting } from '../mixers/moe.js';
import { type FalconH1Multipliers, parseFalconH1 } from './config-falcon-h1.js';
import { ConfigReader, limitPair, reviveFloats } from './config-reader.js';
import { mamba2Keys } from './config-mamba2-keys.js';
import { parseZamba2, type SharedBlockCall, type Zamba2Shared } from './config-zamba2.js';
import { parseJamba } from './config-jamba.js';

/**
 * config.json of the Mamba-2 + attention hybrids (issue 14), as transformers 5.17 and the Hub write
 * them, read into one HybridConfig: the layer sequence (which mixer, which feed-forward) and each
 * part's sizes. The math of each is in fixtures/family/MATH.md.
 *   granitemoehybrid (Granite 4.0-H): layer_types mamba/attention (Hub) or linear_attention/full_attention;
 *     every layer mixer + (MoE + shared MLP, or the shared MLP alone); embedding, residual, attention and
 *     logits multipliers
 *   bamba (Bamba-9B): attn_layer_indices; every layer mixer + SwiGLU MLP; partial rotary
 *   nemotron_h (Nemotron-H): hybrid_override_pattern M/*\/-/E (Hub) or layers_block_type; one mixer per layer
 *   falcon_h1 (Falcon-H1): Mamba-2 and attention in parallel in every layer, then a SwiGLU MLP; muP
 *     multipliers (config-falcon-h1.ts)
 *   zamba2 (Zamba2): Mamba-2 layers, shared attention + MLP blocks called before the hybrid ones (config-zamba2.ts)
 *   jamba (Jamba): Mamba-1 layers (config-jamba.ts); every layer mixer + (SwiGLU MLP or MoE)
 * The Mamba-2 layers use the per-group gated RMSNorm (group d_inner / n_groups), as mamba_ssm and
 * llama.cpp do and the checkpoints were trained with (transformers normalises across groups for
 * Granite and Bamba: transformers#40861).
 */
export type HybridArch = 'granitemoehybrid' | 'bamba' | 'nemotron_h' | 'falcon_h1' | 'zamba2' | 'jamba';

export const HYBRID_ARCHS: readonly HybridArch[] = [
  'granitemoehybrid',
  'bamba',
  'nemotron_h',
  'falcon_h1',
  'zamba2',
  'jamba',
];

/**
 * A layer's sequence mixer, or (Nemotron-H) a feed-forward standing alone as a layer; 'mamba2+attention'
 * (Falcon-H1): both on the same input, their outputs summed; 'mamba1' (Jamba).
 */
export type HybridMixerKind = 'mamba2' | 'mamba1' | 'attention' | 'mlp' | 'moe' | 'mamba2+attention';

export interface HybridLayer {
  mixer: HybridMixerKind;
  /** The feed-forward after the mixer in the same decoder layer (its own norm), or none. */
  ffn: 'mlp' | 'moe' | null;
  /** Zamba2: the shared block called before this layer's mixer (its output joins the mixer's input). */
  shared?: SharedBlockCall;
}

export interface HybridMamba2 {
  nHeads: number;
  headDim: number;
  nGroups: number;
  dState: number;
  dConv: number;
  chunkSize: number;
  /** e = nHeads · headDim. */
  dInner: number;
  useBias: boolean;
  useConvBias: boolean;
  timeStepLimit: [number, number];
  /** Columns normalised together by the gated norm: e / nGroups. */
  normGroupSize: number;
  /** out_proj's bias where it differs from in_proj's (Falcon-H1's projectors_bias); default useBias. */
  outBias?: boolean;
  /** false: no norm, y · silu(z) (Falcon-H1's mamba_rms_norm false); default true. */
  rmsNorm?: boolean;
  /** The gated norm normalises y, then gates (Falcon-H1's mamba_norm_before_gate); default false. */
  normBeforeGate?: boolean;
}

/** The Mamba-1 (S6) layers of Jamba, with RMS norms with weights on dt_low, B and C (mixers/mamba.ts). */
export interface HybridMamba1 {
  /** e = mamba_expand · hidden_size. */
  dInner: number;
  dState: number;
  dConv: number;
  dtRank: number;
  useBias: boolean;
  useConvBias: boolean;
  /** eps of the Δ/B/C norms (dt_layernorm, b_layernorm, c_layernorm). */
  dtBCNormEps: number;
}

export interface HybridAttention {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** 0: no positional encoding (NoPE). */
  rotaryDim: number;
  ropeTheta: number;
  scale: number;
  bias: boolean;
  outBias: boolean;
}

export interface HybridMlp {
  activation: MlpActivation;
  intermediate: number;
  bias: boolean;
}

export interface HybridMoe {
  experts: number;
  topK: number;
  intermediate: number;
  activation: MlpActivation;
  routing: MoeRouting;
  normTopk: boolean;
  scaling: number;
  nGroup: number;
  topkGroup: number;
  /** Hidden width of the shared expert, 0 for none (Granite's shared MLP is `mlp`, not this). */
  sharedIntermediate: number;
}

export interface HybridConfig {
  arch: HybridArch;
  dModel: number;
  nLayer: number;
  vocabSize: number;
  normEps: number;
  tieEmbeddings: boolean;
  layers: HybridLayer[];
  /** The Mamba-2 layers' sizes; null where the SSM layers are Mamba-1 (Jamba). */
  mamba: HybridMamba2 | null;
  /** The Mamba-1 layers' sizes (Jamba). */
  mamba1?: HybridMamba1;
  attention: HybridAttention;
  mlp: HybridMlp | null;
  moe: HybridMoe | null;
  /** h0 = embed(ids) · embeddingMultiplier. */
  embeddingMultiplier: number;
  /** Each block's output is scaled by this before the residual add. */
  residualMultiplier: number;
  /** logits = lm_head(h) / logitsScaling. */
  logitsScaling: number;
  /** Falcon-H1's muP multipliers (its builder folds them into the weights); absent elsewhere. */
  muP?: FalconH1Multipliers;
  eosTokenId: number | undefined;
  bosTokenId: number | undefined;
  padTokenId: number | undefined;
  layout: 'hf';
  /** Zamba2's shared blocks (their attention's sizes are `attention`). */
  zamba2?: Zamba2Shared;
}

/** Bounds of the sizes (far above any published model; the checkpoint's size then bounds the rest). */
const MAX_SIZE = 1 << 20;

/** The Mamba-2 sizes of a hybrid built on Mamba-2 (every one but Jamba, whose SSM layers are Mamba-1). */
export function mamba2Of(c: HybridConfig): HybridMamba2 {
  if (!c.mamba)
    fail('CONFIG_MISMATCH', `${c.arch} has no Mamba-2 layers (internal error: a Mamba-2 builder was called)`);
  return c.mamba;
}

/** Whether a config.json object names one of the hybrids. */
export function isHybridConfig(json: unknown): boolean {
  const mt = (json as { model_type?: unknown } | null)?.model_type;
  return typeof mt === 'string' && (HYBRID_ARCHS as readonly string[]).includes(mt);
}

/** Parses the config.json of a hybrid; anything else (or an unsupported option) is a clear error. */
export function parseHybridConfig(json: unknown, where = 'config.json'): HybridConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json))
    fail('CORRUPT_FILE', `${where}: expected a JSON object`);
  const raw = reviveFloats(json) as Record<string, unknown>;
  const r = new ConfigReader(raw, where);
  const mt = raw.model_type;
  let c: HybridConfig;
  switch (mt) {
    case 'granitemoehybrid':
      c = parseGranite(r);
      break;
    case 'bamba':
      c = parseBamba(r);
      break;
    case 'nemotron_h':
      c = parseNemotronH(r);
      break;
    case 'falcon_h1':
      c = parseFalconH1(r);
      break;
    case 'zamba2':
      c = parseZamba2(r);
      break;
    case 'jamba':
      c = parseJamba(r);
      break;
    default:
      return fail(
        'UNSUPPORTED',
        `${where}: model_type ${JSON.stringify(mt)} is not a supported hybrid; supported: ${HYBRID_ARCHS.join(', ')}`,
        { modelType: mt },
      );
  }
  validate(c, where);
  return c;
}

function tokenIds(r: ConfigReader): Pick<HybridConfig, 'eosTokenId' | 'bosTokenId' | 'padTokenId'> {
  return {
    eosTokenId: r.tokenId('eos_token_id'),
    bosTokenId: r.tokenId('bos_token_id'),
    padTokenId: r.tokenId('pad_token_id'),
  };
}

/** rope_parameters (transformers 5) or rope_theta / rope_scaling (older configs): default RoPE only. */
function rope(r: ConfigReader, dflt: number): { theta: number; partial: number | undefined } {
  const p = r.raw.rope_parameters as Record<string, unknown> | undefined;
  const scaling = r.raw.rope_scaling as Record<string, unknown> | null | undefined;
  const type = (p?.rope_type ?? scaling?.rope_type ?? scaling?.type ?? 'default') as unknown;
  if (type !== 'default') r.unsupported(`rope_type ${JSON.stringify(type)}`, '"default" RoPE');
  const theta = typeof p?.rope_theta === 'number' ? p.rope_theta : r.num('rope_theta', dflt);
  const partial = typeof p?.partial_rotary_factor === 'number' ? p.partial_rotary_factor : undefined;
  return { theta, partial };
}

/**
 * Rotary width and base from a partial_rotary_factor, as transformers' default RoPE computes them:
 * dim = int(dh · f) and inverse frequencies base^(-2i/dim) for i < ceil(dim/2), so 2·ceil(dim/2) dims
 * rotate (cos.shape[-1]). Where dim is odd (Bamba's head_dim 10 · 0.5 = 5: 6 dims rotate, exponents
 * over 5) the base is rescaled so the kernel's base'^(-2i/width) equals base^(-2i/dim).
 */
function partialRotary(
  r: ConfigReader,
  headDim: number,
  factor: number,
  theta: number,
): { dim: number; theta: number } {
  if (!(factor > 0 && factor <= 1))
    fail('CORRUPT_FILE', `${r.where}: partial_rotary_factor must be in (0, 1], got ${factor}`);
  const dim = Math.floor(headDim * factor);
  const width = 2 * Math.ceil(dim / 2);
  if (dim < 1 || width > headDim)
    fail(
      'CORRUPT_FILE',
      `${r.where}: head_dim ${headDim} x partial_rotary_factor ${factor} leaves no valid rotary width`,
    );
  return { dim: width, theta: width === dim ? theta : theta ** (width / dim) };
}

function requireSilu(r: ConfigReader, key: string): void {
  const act = r.str(key, 'silu');
  if (act !== 'silu') r.unsupported(`${key} "${act}"`, '"silu"');
}

/** The Mamba-2 part of Granite and Bamba (`mamba_*` keys), e = mamba_expand · hidden_size. */
function mambaKeys(r: ConfigReader, dModel: number): HybridMamba2 {
  const dInner = Math.floor(r.num('mamba_expand', 2) * dModel);
  return mamba2Keys(r, dInner, `mamba_expand x hidden_size = ${dInner}`);
}

function attentionKeys(
  r: ConfigReader,
  dModel: number,
  headDimKey: string | null,
): Omit<HybridAttention, 'rotaryDim' | 'ropeTheta' | 'scale'> {
  const heads = r.int('num_attention_heads', 32);
  const kvHeads =
    r.has('num_key_value_heads') && r.raw.num_key_value_heads !== null ? r.int('num_key_value_heads') : heads;
  const headDim = headDimKey && r.has(headDimKey) && r.raw[headDimKey] !== null ? r.int(headDimKey) : dModel / heads;
  if (!Number.isInteger(headDim))
    fail('CORRUPT_FILE', `${r.where}: num_attention_heads ${heads} must divide hidden_size ${dModel}`);
  const bias = r.bool('attention_bias', false);
  return { heads, kvHeads, headDim, bias, outBias: bias };
}

function parseGranite(r: ConfigReader): HybridConfig {
  const dModel = r.int('hidden_size', 4096);
  requireSilu(r, 'hidden_act');
  const nLayer = r.int('num_hidden_layers', 32);
  const types = r.raw.layer_types;
  if (!Array.isArray(types) || types.length !== nLayer)
    fail('CORRUPT_FILE', `${r.where}: layer_types must list the ${nLayer} layers' types`);
  const experts = r.int('num_local_experts', 8 as number);
  const ffn = experts > 0 ? 'moe' : 'mlp';
  const layers: HybridLayer[] = types.map((t, i) => {
    if (t === 'mamba' || t === 'linear_attention') return { mixer: 'mamba2', ffn };
    if (t === 'attention' || t === 'full_attention') return { mixer: 'attention', ffn };
    return r.unsupported(
      `layer_types[${i}] ${JSON.stringify(t)}`,
      'mamba, attention, linear_attention, full_attention',
    );
  });
  const pos = r.raw.position_embedding_type ?? 'nope';
  if (pos !== 'nope' && pos !== 'rope')
    r.unsupported(`position_embedding_type ${JSON.stringify(pos)}`, '"nope", "rope"');
  const att = attentionKeys(r, dModel, null);
  const { theta } = rope(r, 10000);
  const shared = r.int('shared_intermediate_size', 1024);
  return {
    arch: 'granitemoehybrid',
    dModel,
    nLayer,
    vocabSize: r.int('vocab_size', 32000),
    normEps: r.num('rms_norm_eps', 1e-6),
    tieEmbeddings: r.bool('tie_word_embeddings', true),
    layers,
    mamba: mambaKeys(r, dModel),
    attention: {
      ...att,
      rotaryDim: pos === 'rope' ? att.headDim : 0,
      ropeTheta: theta,
      scale: r.num('attention_multiplier', 1),
    },
    // the shared MLP is in every layer (alone when there are no experts)
    mlp: { activation: 'swiglu', intermediate: shared, bias: false },
    moe:
      experts > 0
        ? {
            experts,
            topK: r.int('num_experts_per_tok', 2),
            intermediate: r.int('intermediate_size', 1024),
            activation: 'swiglu',
            routing: 'topk-softmax',
            normTopk: true,
            scaling: 1,
            nGroup: 1,
            topkGroup: 1,
            sharedIntermediate: 0,
          }
        : null,
    embeddingMultiplier: r.num('embedding_multiplier', 1),
    residualMultiplier: r.num('residual_multiplier', 1),
    logitsScaling: r.num('logits_scaling', 1),
    ...tokenIds(r),
    layout: 'hf',
  };
}

function parseBamba(r: ConfigReader): HybridConfig {
  const dModel = r.int('hidden_size', 4096);
  requireSilu(r, 'hidden_act');
  const nLayer = r.int('num_hidden_layers', 32);
  const attnIdx = r.raw.attn_layer_indices ?? [];
  if (!Array.isArray(attnIdx) || attnIdx.some((i) => !Number.isInteger(i) || i < 0 || i >= nLayer))
    fail('CORRUPT_FILE', `${r.where}: attn_layer_indices must list layer indices in [0, ${nLayer})`);
  const layers: HybridLayer[] = Array.from({ length: nLayer }, (_, i) => ({
    mixer: (attnIdx as number[]).includes(i) ? 'attention' : 'mamba2',
    ffn: 'mlp',
  }));
  const att = attentionKeys(r, dModel, null);
  const { theta, partial } = rope(r, 10000);
  const rot = partialRotary(r, att.headDim, partial ?? r.num('partial_rotary_factor', 0.5), theta);
  return {
    arch: 'bamba',
    dModel,
    nLayer,
    vocabSize: r.int('vocab_size', 128000),
    normEps: r.num('rms_norm_eps', 1e-5),
    tieEmbeddings: r.bool('tie_word_embeddings', false),
    layers,
    mamba: mambaKeys(r, dModel),
    attention: { ...att, rotaryDim: rot.dim, ropeTheta: rot.theta, scale: 1 / Math.sqrt(att.headDim) },
    mlp: { activation: 'swiglu', intermediate: r.int('intermediate_size', 14336), bias: r.bool('mlp_bias', false) },
    moe: null,
    embeddingMultiplier: 1,
    residualMultiplier: 1,
    logitsScaling: 1,
    ...tokenIds(r),
    layout: 'hf',
  };
}

const NEMOTRON_PATTERN: Record<string, HybridMixerKind> = { M: 'mamba2', '*': 'attention', '-': 'mlp', E: 'moe' };
const NEMOTRON_TYPES: Record<string, HybridMixerKind> = {
  mamba: 'mamba2',
  attention: 'attention',
  mlp: 'mlp',
  moe: 'moe',
};

function parseNemotronH(r: ConfigReader): HybridConfig {
  const dModel = r.int('hidden_size', 4096);
  let kinds: HybridMixerKind[];
  if (typeof r.raw.hybrid_override_pattern === 'string') {
    kinds = [...r.raw.hybrid_override_pattern].map(
      (ch, i) => NEMOTRON_PATTERN[ch] ?? r.unsupported(`hybrid_override_pattern[${i}] "${ch}"`, 'M, *, -, E'),
    );
  } else if (Array.isArray(r.raw.layers_block_type)) {
    kinds = r.raw.layers_block_type.map(
      (t, i) =>
        NEMOTRON_TYPES[String(t)] ??
        r.unsupported(`layers_block_type[${i}] ${JSON.stringify(t)}`, 'mamba, attention, mlp, moe'),
    );
  } else {
    return fail('CORRUPT_FILE', `${r.where}: nemotron_h needs hybrid_override_pattern or layers_block_type`);
  }
  const nLayer = r.has('num_hidden_layers') ? r.int('num_hidden_layers') : kinds.length;
  if (kinds.length !== nLayer)
    fail('CORRUPT_FILE', `${r.where}: the layer pattern has ${kinds.length} layers, num_hidden_layers says ${nLayer}`);
  const act = r.str('mlp_hidden_act', 'relu2');
  if (act !== 'relu2') r.unsupported(`mlp_hidden_act "${act}"`, '"relu2"');
  requireSilu(r, 'mamba_hidden_act');
  if (r.raw.moe_latent_size !== undefined && r.raw.moe_latent_size !== null)
    r.unsupported(`moe_latent_size ${JSON.stringify(r.raw.moe_latent_size)}`, 'null (no latent projection)');
  if (r.raw.sliding_window !== undefined && r.raw.sliding_window !== null)
    r.unsupported(`sliding_window ${JSON.stringify(r.raw.sliding_window)}`, 'null (full causal attention)');
  const nHeads = r.int('mamba_num_heads', 128);
  const headDim = r.int('mamba_head_dim', 64);
  const nGroups = r.int('n_groups', 8);
  const dInner = nHeads * headDim;
  const att = attentionKeys(r, dModel, 'head_dim');
  const hasMoe = kinds.includes('moe');
  const shared = r.int('n_shared_experts', 1);
  if (hasMoe && shared > 1) r.unsupported(`n_shared_experts ${shared}`, '0 or 1');
  return {
    arch: 'nemotron_h',
    dModel,
    nLayer,
    vocabSize: r.int('vocab_size', 131072),
    normEps: r.num('layer_norm_epsilon', 1e-5),
    tieEmbeddings: r.bool('tie_word_embeddings', false),
    layers: kinds.map((mixer) => ({ mixer, ffn: null })),
    mamba: {
      nHeads,
      headDim,
      nGroups,
      dState: r.int('ssm_state_size', 128),
      dConv: r.int('conv_kernel', 4),
      chunkSize: r.int('chunk_size', 128),
      dInner,
      useBias: r.bool('mamba_proj_bias', r.bool('use_bias', false)),
      useConvBias: r.bool('use_conv_bias', true),
      // transformers hard-codes (time_step_min, inf) in the chunked form only; mamba_ssm's and llama.cpp's
      // default (0, inf) in both forms (fixtures/family/README.md)
      timeStepLimit: limitPair(r, 'time_step_limit', [0, Infinity]),
      normGroupSize: dInner / nGroups,
    },
    attention: { ...att, rotaryDim: 0, ropeTheta: 10000, scale: 1 / Math.sqrt(att.headDim) },
    mlp: kinds.includes('mlp')
      ? { activation: 'relu2', intermediate: r.int('intermediate_size', 21504), bias: r.bool('mlp_bias', false) }
      : null,
    moe: hasMoe
      ? {
          experts: r.int('n_routed_experts', 8),
          topK: r.int('num_experts_per_tok', 2),
          intermediate: r.int('moe_intermediate_size', 7688),
          activation: 'relu2',
          routing: 'sigmoid',
          normTopk: r.bool('norm_topk_prob', true),
          scaling: r.num('routed_scaling_factor', 1),
          nGroup: r.int('n_group', 1),
          topkGroup: r.int('topk_group', 1),
          sharedIntermediate: shared === 0 ? 0 : r.int('moe_shared_expert_intermediate_size', 7688),
        }
      : null,
    embeddingMultiplier: 1,
    residualMultiplier: 1,
    logitsScaling: 1,
    ...tokenIds(r),
    layout: 'hf',
  };
}

function validate(c: HybridConfig, where: string): void {
  const sizes: [string, number][] = [
    ['hidden_size', c.dModel],
    ['num_hidden_layers', c.nLayer],
    ['vocab_size', c.vocabSize],
    ['num_attention_heads', c.attention.heads],
    ['num_key_value_heads', c.attention.kvHeads],
    ['head_dim', c.attention.headDim],
  ];
  if (c.mamba)
    sizes.push(
      ['mamba heads', c.mamba.nHeads],
      ['mamba head_dim', c.mamba.headDim],
      ['n_groups', c.mamba.nGroups],
      ['d_state', c.mamba.dState],
      ['d_conv', c.mamba.dConv],
      ['chunk_size', c.mamba.chunkSize],
    );
  const m1 = c.mamba1;
  if (m1)
    sizes.push(
      ['mamba d_inner', m1.dInner],
      ['mamba_d_state', m1.dState],
      ['mamba_d_conv', m1.dConv],
      ['mamba_dt_rank', m1.dtRank],
    );
  if (m1 && !(Number.isFinite(m1.dtBCNormEps) && m1.dtBCNormEps > 0))
    fail('CORRUPT_FILE', `${where}: the Δ/B/C norms' eps must be a positive finite number, got ${m1.dtBCNormEps}`);
  if (c.layers.some((l) => l.mixer === 'mamba2') && !c.mamba)
    fail('CONFIG_MISMATCH', `${where}: Mamba-2 layers without Mamba-2 sizes (internal error)`);
  if (c.layers.some((l) => l.mixer === 'mamba1') && !m1)
    fail('CONFIG_MISMATCH', `${where}: Mamba-1 layers without Mamba-1 sizes (internal error)`);
  if (c.mlp) sizes.push(['MLP intermediate size', c.mlp.intermediate]);
  if (c.moe) sizes.push(['experts', c.moe.experts], ['expert intermediate size', c.moe.intermediate]);
  for (const [k, v] of sizes)
    if (!(Number.isSafeInteger(v) && v > 0 && v <= (k === 'vocab_size' ? 1 << 24 : MAX_SIZE)))
      fail('CORRUPT_FILE', `${where}: ${k} must be a positive integer within bounds, got ${v}`, { key: k, value: v });
  if (c.mamba && c.mamba.nHeads % c.mamba.nGroups !== 0)
    fail('CORRUPT_FILE', `${where}: the ${c.mamba.nHeads} Mamba heads cannot be split into ${c.mamba.nGroups} groups`);
  if (c.attention.heads % c.attention.kvHeads !== 0)
    fail(
      'CORRUPT_FILE',
      `${where}: num_key_value_heads ${c.attention.kvHeads} must divide num_attention_heads ${c.attention.heads}`,
    );
  for (const [k, v] of [
    ['eps', c.normEps],
    ['attention scale', c.attention.scale],
    ['embedding_multiplier', c.embeddingMultiplier],
    ['residual_multiplier', c.residualMultiplier],
    ['logits_scaling', c.logitsScaling],
    ['rope theta', c.attention.ropeTheta],
  ] as const)
    if (!(Number.isFinite(v) && v > 0))
      fail('CORRUPT_FILE', `${where}: ${k} must be a positive finite number, got ${v}`);
  if (c.moe && !(c.moe.topK >= 1 && c.moe.topK <= c.moe.experts))
    fail('CORRUPT_FILE', `${where}: num_experts_per_tok ${c.moe.topK} must be in [1, ${c.moe.experts}]`);
}

/**
 * Bytes of one sequence's state, f32, split as `info` reports it: what stays constant (each Mamba-2
 * layer's conv window (e + 2gn, k) and SSM state (h, p, n); each Mamba-1 layer's conv window (e, k) and
 * SSM state (e, n); each attention layer's length counter) and what each token of context adds (each
 * attention layer's k and v rows, 2 · G · dh). Each call of a Zamba2 shared block counts as an attention
 * layer (its own KV cache); a Falcon-H1 layer as both a Mamba-2 and an attention layer.
 */
export function hybridStateBytes(c: HybridConfig): { constantBytes: number; bytesPerToken: number } {
  const m = c.mamba,
    m1 = c.mamba1,
    a = c.attention;
  const nMamba = c.layers.filter((l) => l.mixer === 'mamba2' || l.mixer === 'mamba2+attention').length;
  const nMamba1 = c.layers.filter((l) => l.mixer === 'mamba1').length;
  // each call of a Zamba2 shared block keeps its own KV cache (its input differs per call)
  const nAttn = c.layers.filter((l) => l.mixer === 'attention' || l.mixer === 'mamba2+attention' || l.shared).length;
  const mamba2 = m ? (m.dInner + 2 * m.nGroups * m.dState) * m.dConv + m.nHeads * m.headDim * m.dState : 0;
  const mamba1 = m1 ? m1.dInner * (m1.dConv + m1.dState) : 0;
  return {
    constantBytes: 4 * (nMamba * mamba2 + nMamba1 * mamba1 + nAttn),
    bytesPerToken: 4 * nAttn * 2 * a.kvHeads * a.headDim,
  };
}
