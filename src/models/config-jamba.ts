import { fail } from '../errors.js';
import { type ConfigReader, parseDtRank } from './config-reader.js';

/**
 * config.json of AI21's Jamba (transformers `JambaConfig`, model_type "jamba": Jamba v0.1, 1.5 Mini and
 * Large, 1.6, Reasoning), read into the fields of the shared HybridConfig (config-hybrid.ts dispatches
 * here and checks the result against that type, and its sizes in `validate`). The math is in
 * fixtures/family/MATH.md ("jamba"):
 *   layer i: mixer = attention if i % attn_layer_period == attn_layer_offset, else Mamba-1;
 *            ffn   = MoE if i % expert_layer_period == expert_layer_offset (and num_experts > 1), else SwiGLU
 *   Mamba-1 (S6) with RMS norms *with weights* on dt_low (dt_rank wide), B and C (eps rms_norm_eps)
 *   attention: GQA, no positional encoding, scale 1/sqrt(head_dim), no bias
 *   MoE: softmax over all experts, top-k, weights not renormalised; experts SwiGLU of intermediate_size
 * This file imports nothing from config-hybrid.ts (which imports it): the returned object's type is
 * inferred, and config-hybrid.ts checks it is a HybridConfig where it assigns it.
 */

/** A period/offset pair: offset in [0, period), as JambaConfig.validate_architecture requires. */
function periodic(
  r: ConfigReader,
  periodKey: string,
  offsetKey: string,
  period: number,
  offset: number,
): [number, number] {
  const p = r.int(periodKey, period);
  const o = r.int(offsetKey, offset);
  if (!(p >= 1 && o >= 0 && o < p))
    fail('CORRUPT_FILE', `${r.where}: ${offsetKey} ${o} must be in [0, ${periodKey} ${p})`, { period: p, offset: o });
  return [p, o];
}

/**
 * Refuses what mamba-ts does not implement. Ignored on purpose, as they do not change the math:
 * use_mamba_kernels / use_mambapy / use_associative_scan (which implementation of the same scan
 * transformers runs), output_router_logits / router_aux_loss_coef (the training loss),
 * num_logits_to_keep (which positions the old remote code returned logits for), attention_dropout
 * (training only), max_position_embeddings (NoPE: no table depends on it).
 */
function refuseUnsupported(r: ConfigReader): void {
  const act = r.str('hidden_act', 'silu');
  if (act !== 'silu') r.unsupported(`hidden_act "${act}"`, '"silu" (the Mamba-1 layers and the SwiGLU MLPs use it)');
  // transformers 4.x declared a sliding window (flash-attention only); 5.x attends to the whole context
  if (r.raw.sliding_window !== undefined && r.raw.sliding_window !== null)
    r.unsupported(`sliding_window ${JSON.stringify(r.raw.sliding_window)}`, 'null (full causal attention)');
  for (const key of ['rope_scaling', 'rope_parameters', 'rope_theta'])
    if (r.raw[key] !== undefined && r.raw[key] !== null)
      r.unsupported(`${key} ${JSON.stringify(r.raw[key])}`, 'none: Jamba attention has no positional encoding');
  if (r.raw.attention_bias === true) r.unsupported('attention_bias true', 'false');
  if (r.raw.mlp_bias === true) r.unsupported('mlp_bias true', 'false');
}

/** Parses a jamba config.json (ConfigReader over the revived JSON) with JambaConfig's defaults. */
export function parseJamba(r: ConfigReader) {
  refuseUnsupported(r);
  const dModel = r.int('hidden_size', 4096);
  const nLayer = r.int('num_hidden_layers', 32);
  const [attnPeriod, attnOffset] = periodic(r, 'attn_layer_period', 'attn_layer_offset', 8, 4);
  const [expertPeriod, expertOffset] = periodic(r, 'expert_layer_period', 'expert_layer_offset', 2, 1);
  // num_local_experts is JambaConfig's alias of num_experts
  const experts = r.has('num_experts') ? r.int('num_experts') : r.int('num_local_experts', 16);
  const intermediate = r.int('intermediate_size', 14336);
  // layers_num_experts: num_experts on the expert layers, else 1; one expert is the plain MLP (JambaMLP)
  const layers = Array.from({ length: nLayer }, (_, i) => ({
    mixer: i % attnPeriod === attnOffset ? ('attention' as const) : ('mamba1' as const),
    ffn: experts > 1 && i % expertPeriod === expertOffset ? ('moe' as const) : ('mlp' as const),
  }));
  const heads = r.int('num_attention_heads', 32);
  // JambaConfig: 8 when absent, num_attention_heads when null
  const kvHeads = r.raw.num_key_value_heads === null ? heads : r.int('num_key_value_heads', 8);
  // JambaAttention: getattr(config, "head_dim", hidden_size // num_attention_heads)
  const headDim =
    r.raw.head_dim === undefined || r.raw.head_dim === null ? Math.floor(dModel / heads) : r.int('head_dim');
  const expand = r.int('mamba_expand', 2);
  const normEps = r.num('rms_norm_eps', 1e-6);
  return {
    arch: 'jamba' as const,
    dModel,
    nLayer,
    vocabSize: r.int('vocab_size', 65536),
    normEps,
    tieEmbeddings: r.bool('tie_word_embeddings', false),
    layers,
    mamba: null,
    mamba1: {
      dInner: expand * dModel,
      dState: r.int('mamba_d_state', 16),
      dConv: r.int('mamba_d_conv', 4),
      dtRank: parseDtRank(r, 'mamba_dt_rank', dModel),
      useBias: r.bool('mamba_proj_bias', false),
      useConvBias: r.bool('mamba_conv_bias', true),
      // dt_layernorm, b_layernorm, c_layernorm: JambaRMSNorm(eps=rms_norm_eps), with weights
      dtBCNormEps: normEps,
    },
    attention: {
      heads,
      kvHeads,
      headDim,
      rotaryDim: 0,
      ropeTheta: 10000, // unused (no rotary dims); validate wants a positive number
      scale: 1 / Math.sqrt(headDim),
      bias: false,
      outBias: false,
    },
    mlp: { activation: 'swiglu' as const, intermediate, bias: false },
    moe: layers.some((l) => l.ffn === 'moe')
      ? {
          experts,
          topK: r.int('num_experts_per_tok', 2),
          intermediate,
          activation: 'swiglu' as const,
          routing: 'softmax-topk' as const,
          normTopk: false,
          scaling: 1,
          nGroup: 1,
          topkGroup: 1,
          sharedIntermediate: 0,
        }
      : null,
    embeddingMultiplier: 1,
    residualMultiplier: 1,
    logitsScaling: 1,
    eosTokenId: r.tokenId('eos_token_id'),
    bosTokenId: r.tokenId('bos_token_id'),
    padTokenId: r.tokenId('pad_token_id'),
    layout: 'hf' as const,
  };
}
