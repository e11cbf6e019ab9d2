/**
 * A small Granite 4.0-H-layout model with random weights, for the benches that need a hybrid of a
 * given shape (hybrid-context-cost.ts times it in memory; random-hybrid.ts writes it for the server).
 */
import type { Rng } from '../src/mixers/init.js';

export interface GraniteShape {
  dModel: number;
  /** One entry per layer: 'linear_attention' (Mamba-2) or 'full_attention'. */
  layerTypes: string[];
  vocab: number;
  kvHeads: number;
  dState: number;
  /** Attention and Mamba-2 head width (default 64). */
  headDim?: number;
}

/** config.json (transformers 5 vocabulary) of a dense Granite 4.0-H with RoPE attention and GQA. */
export function graniteConfigJson(s: GraniteShape): Record<string, unknown> {
  const d = s.dModel,
    headDim = s.headDim ?? 64;
  return {
    architectures: ['GraniteMoeHybridForCausalLM'],
    model_type: 'granitemoehybrid',
    hidden_size: d,
    num_hidden_layers: s.layerTypes.length,
    layer_types: s.layerTypes,
    vocab_size: s.vocab,
    bos_token_id: 0,
    eos_token_id: 0,
    pad_token_id: 0,
    num_attention_heads: d / headDim,
    num_key_value_heads: s.kvHeads,
    position_embedding_type: 'rope',
    rope_parameters: { rope_theta: 10000, rope_type: 'default' },
    mamba_n_heads: (2 * d) / headDim,
    mamba_d_head: headDim,
    mamba_d_state: s.dState,
    mamba_n_groups: 1,
    mamba_d_conv: 4,
    mamba_expand: 2,
    mamba_chunk_size: 64,
    mamba_conv_bias: true,
    mamba_proj_bias: false,
    num_local_experts: 0,
    num_experts_per_tok: 0,
    shared_intermediate_size: 2 * d,
    intermediate_size: 2 * d,
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    attention_bias: false,
    embedding_multiplier: 1,
    residual_multiplier: 1,
    attention_multiplier: 1 / Math.sqrt(headDim),
    logits_scaling: 1,
    tie_word_embeddings: true,
    dtype: 'float32',
  };
}

/**
 * A tensor's random values: A_log, norms, D and dt_bias near their usual values (a stable, ordinary
 * recurrence), everything else normal / sqrt(fan-in). Draws from `rng` only for the latter.
 */
export function randomHybridValues(name: string, shape: readonly number[], rng: Rng): Float32Array {
  const v = new Float32Array(shape.reduce((x, y) => x * y, 1));
  if (name.endsWith('A_log')) v.fill(0.5);
  else if (name.endsWith('norm.weight') || name.endsWith('.D')) v.fill(1);
  else if (name.endsWith('dt_bias')) v.fill(-4.6);
  else {
    const s = 1 / Math.sqrt(shape[shape.length - 1]);
    for (let i = 0; i < v.length; i++) v[i] = rng.normal() * s;
  }
  return v;
}
