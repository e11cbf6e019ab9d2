import { fail } from '../errors.js';
import type { ConfigReader } from './config-reader.js';
import { mamba2Keys } from './config-mamba2-keys.js';

/**
 * config.json of TII's Falcon-H1 (`model_type: falcon_h1`), as transformers 5.17 reads it
 * (FalconH1Config; the math in fixtures/family/MATH.md "falcon_h1"), for the shared HybridConfig.
 * Every decoder layer runs a Mamba-2 mixer and attention in parallel on the same normed input and sums
 * them, then a SwiGLU MLP; the muP multipliers scale the parts:
 *   n = input_layernorm(h)
 *   h = h + ssm_out · mamba(ssm_in · n)  +  attention_out · attention(attention_in · n)
 *   h = h + mlp(pre_ff_layernorm(h)),     mlp(x) = down_mult · down(up(x) · silu(gate_mult · gate(x)))
 *   in_proj's output is multiplied part by part: z, x, B, C, dt by ssm_multipliers[0..4]
 *   k = key_multiplier · k_proj(x) (before RoPE);   h0 = embed · embedding_multiplier;
 *   logits = lm_head(h) · lm_head_multiplier
 * mamba_d_ssm sets the Mamba width e = heads · head_dim apart from mamba_expand · hidden_size;
 * mamba_rms_norm false (what the published configs declare) means y · silu(z), no norm.
 * This module knows no HybridConfig (config-hybrid.ts imports it): it returns the same shape.
 */

/** The muP multipliers of Falcon-H1 (1 where the config leaves them out). */
export interface FalconH1Multipliers {
  /** The Mamba mixer's input and output. */
  ssmIn: number;
  ssmOut: number;
  /** in_proj's output parts, in order: z (e), x (e), B (g·n), C (g·n), dt (h). */
  ssm: [number, number, number, number, number];
  /** The attention's input (q, k and v see attentionIn · n) and output. */
  attentionIn: number;
  attentionOut: number;
  /** k = key · k_proj(x), before RoPE. */
  key: number;
  /** silu(gate · gate_proj(x)); the MLP's output times down. */
  mlpGate: number;
  mlpDown: number;
  /** logits = lm_head(h) · lmHead. */
  lmHead: number;
}

/** A list of `n` finite numbers (null or absent: all 1). */
function multipliers(r: ConfigReader, key: string, n: number): number[] {
  const v = r.raw[key];
  if (v === undefined || v === null) return new Array<number>(n).fill(1);
  if (!Array.isArray(v) || v.length !== n || v.some((x) => typeof x !== 'number' || !Number.isFinite(x)))
    fail('CORRUPT_FILE', `${r.where}: "${key}" must be a list of ${n} finite numbers, got ${JSON.stringify(v)}`);
  return v as number[];
}

/** rope_parameters (transformers 5) or rope_theta / rope_scaling (the Hub's configs): default RoPE over the whole head. */
function ropeTheta(r: ConfigReader): number {
  const p = r.raw.rope_parameters as Record<string, unknown> | null | undefined;
  const scaling = r.raw.rope_scaling as Record<string, unknown> | null | undefined;
  const type = p?.rope_type ?? scaling?.rope_type ?? scaling?.type ?? 'default';
  if (type !== 'default') r.unsupported(`rope_type ${JSON.stringify(type)}`, '"default" RoPE');
  // FalconH1RotaryEmbedding rotates all of head_dim; a partial factor would be ignored there, so refuse it here
  const partial = p?.partial_rotary_factor ?? r.raw.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1)
    r.unsupported(`partial_rotary_factor ${JSON.stringify(partial)}`, 'RoPE over the whole head (1 or absent)');
  if (typeof p?.rope_theta === 'number') return p.rope_theta;
  return r.num('rope_theta', 10000);
}

/** Parses a falcon_h1 config.json (already through reviveFloats). */
export function parseFalconH1(r: ConfigReader) {
  const dModel = r.int('hidden_size', 4096);
  const nLayer = r.int('num_hidden_layers', 32);
  const act = r.str('hidden_act', 'silu');
  if (act !== 'silu') r.unsupported(`hidden_act "${act}"`, '"silu"');
  // every layer is "hybrid" (FalconH1Config.layers_block_type); a config listing other kinds is not this model
  const kinds = r.raw.layers_block_type ?? r.raw.layer_types;
  if (kinds !== undefined && kinds !== null) {
    if (!Array.isArray(kinds) || kinds.length !== nLayer)
      fail('CORRUPT_FILE', `${r.where}: layers_block_type must list the ${nLayer} layers' types`);
    kinds.forEach((k, i) => {
      if (k !== 'hybrid')
        r.unsupported(
          `layers_block_type[${i}] ${JSON.stringify(k)}`,
          '"hybrid" (attention and Mamba-2 in every layer)',
        );
    });
  }

  // Mamba-2: e = mamba_d_ssm, or mamba_expand · hidden_size when it is null
  const dInner = r.has('mamba_d_ssm') ? r.int('mamba_d_ssm') : Math.floor(r.num('mamba_expand', 2) * dModel);
  const mamba = mamba2Keys(
    r,
    dInner,
    `the Mamba width ${dInner} (mamba_d_ssm, or mamba_expand x hidden_size when it is null)`,
  );
  const rmsNorm = r.bool('mamba_rms_norm', false);

  // attention: explicit head_dim (default hidden_size / heads), full RoPE, scale 1/sqrt(head_dim)
  const heads = r.int('num_attention_heads', 32);
  const kvHeads = r.has('num_key_value_heads') ? r.int('num_key_value_heads') : heads;
  const headDim = r.has('head_dim') ? r.int('head_dim') : dModel / heads;
  if (!Number.isInteger(headDim))
    fail('CORRUPT_FILE', `${r.where}: num_attention_heads ${heads} must divide hidden_size ${dModel}`);
  const attentionBias = r.bool('attention_bias', false);

  const ssm = multipliers(r, 'ssm_multipliers', 5);
  const [mlpGate, mlpDown] = multipliers(r, 'mlp_multipliers', 2);
  const muP: FalconH1Multipliers = {
    ssmIn: r.num('ssm_in_multiplier', 1),
    ssmOut: r.num('ssm_out_multiplier', 1),
    ssm: [ssm[0], ssm[1], ssm[2], ssm[3], ssm[4]],
    attentionIn: r.num('attention_in_multiplier', 1),
    attentionOut: r.num('attention_out_multiplier', 1),
    key: r.num('key_multiplier', 1),
    mlpGate,
    mlpDown,
    lmHead: r.num('lm_head_multiplier', 1),
  };
  for (const [k, v] of Object.entries(muP))
    if (typeof v === 'number' && !Number.isFinite(v))
      fail('CORRUPT_FILE', `${r.where}: the ${k} multiplier must be finite, got ${v}`);
  // the logits are divided by logitsScaling (Granite's form): 1 / lm_head_multiplier
  if (!(muP.lmHead > 0)) r.unsupported(`lm_head_multiplier ${muP.lmHead}`, 'a positive multiplier');

  return {
    arch: 'falcon_h1' as const,
    dModel,
    nLayer,
    vocabSize: r.int('vocab_size', 128000),
    normEps: r.num('rms_norm_eps', 1e-5),
    tieEmbeddings: r.bool('tie_word_embeddings', false),
    layers: Array.from({ length: nLayer }, () => ({ mixer: 'mamba2+attention' as const, ffn: 'mlp' as const })),
    mamba: {
      ...mamba,
      // in_proj's bias is mamba_proj_bias (useBias), out_proj's is projectors_bias (FalconH1Mixer)
      outBias: r.bool('projectors_bias', false),
      // FalconH1RMSNormGated normalises each group of e / n_groups columns (normGroupSize)
      rmsNorm,
      normBeforeGate: r.bool('mamba_norm_before_gate', true),
    },
    attention: {
      heads,
      kvHeads,
      headDim,
      rotaryDim: headDim,
      ropeTheta: ropeTheta(r),
      scale: 1 / Math.sqrt(headDim),
      bias: attentionBias,
      outBias: attentionBias,
    },
    mlp: {
      activation: 'swiglu' as const,
      intermediate: r.int('intermediate_size', 14336),
      bias: r.bool('mlp_bias', false),
    },
    moe: null,
    embeddingMultiplier: r.num('embedding_multiplier', 1),
    residualMultiplier: 1,
    logitsScaling: 1 / muP.lmHead,
    muP,
    eosTokenId: r.tokenId('eos_token_id'),
    bosTokenId: r.tokenId('bos_token_id'),
    padTokenId: r.tokenId('pad_token_id'),
    layout: 'hf' as const,
  };
}
