import type { Mamba2Config, MambaConfig } from '../models/config.js';
import { INIT_DEFAULTS, type InitOptions } from './init.js';

/**
 * config.json of a Mamba-1 checkpoint as transformers' `MambaConfig.to_dict()` writes it (model_type
 * "mamba", architectures ["MambaForCausalLM"], every key of the class), so `MambaForCausalLM.from_pretrained`
 * and mamba-ts load it. The init-only keys (time_step_*, initializer_range, rescale_prenorm_residual)
 * record how the model was initialised (rescale_prenorm_residual excepted, see below). Write it with `hfConfigText`: transformers 5 validates the
 * types strictly, and a float field must be written as a float (`1.0`, not `1`).
 */
export function hfMambaConfigJson(c: MambaConfig, init: Omit<InitOptions, 'seed'> = {}): Record<string, unknown> {
  const o = { ...INIT_DEFAULTS, ...init };
  return {
    architectures: ['MambaForCausalLM'],
    bos_token_id: c.bosTokenId ?? null,
    conv_kernel: c.dConv,
    dtype: 'float32',
    eos_token_id: c.eosTokenId ?? null,
    expand: c.expand,
    hidden_act: 'silu',
    hidden_size: c.dModel,
    initializer_range: o.initializerRange,
    intermediate_size: c.dInner,
    layer_norm_epsilon: c.normEps,
    model_type: 'mamba',
    num_hidden_layers: c.nLayer,
    pad_token_id: c.padTokenId ?? null,
    // Always false: transformers applies this init-time rescaling (out_proj / √n_layer) to the weights
    // it loads as well, which would change a trained model. Our init applied it already (`init.ts`).
    rescale_prenorm_residual: false,
    residual_in_fp32: c.residualInFp32,
    state_size: c.dState,
    tie_word_embeddings: c.tieEmbeddings,
    time_step_floor: o.timeStepFloor,
    time_step_init_scheme: 'random',
    time_step_max: o.timeStepMax,
    time_step_min: o.timeStepMin,
    time_step_rank: c.dtRank,
    time_step_scale: o.timeStepScale,
    use_associative_scan: true,
    use_bias: c.useBias,
    use_cache: true,
    use_conv_bias: c.useConvBias,
    use_mambapy: false,
    vocab_size: c.vocabSize,
  };
}

/**
 * config.json of a Mamba-2 checkpoint as transformers' `Mamba2Config.to_dict()` writes it (model_type
 * "mamba2", architectures ["Mamba2ForCausalLM"]), so `Mamba2ForCausalLM.from_pretrained` and mamba-ts
 * load it. transformers' gated norm normalises over all of intermediate_size: a model trained with
 * n_groups > 1 under mamba_ssm's per-group norm differs there (the trainer's default n_groups is 1).
 */
export function hfMamba2ConfigJson(c: Mamba2Config, init: Omit<InitOptions, 'seed'> = {}): Record<string, unknown> {
  const o = { ...INIT_DEFAULTS, ...init };
  return {
    architectures: ['Mamba2ForCausalLM'],
    bos_token_id: c.bosTokenId ?? null,
    chunk_size: c.chunkSize,
    conv_kernel: c.dConv,
    dtype: 'float32',
    eos_token_id: c.eosTokenId ?? null,
    expand: c.expand,
    head_dim: c.headDim,
    hidden_act: 'silu',
    hidden_size: c.dModel,
    initializer_range: o.initializerRange,
    layer_norm_epsilon: c.normEps,
    model_type: 'mamba2',
    n_groups: c.nGroups,
    num_heads: c.nHeads,
    num_hidden_layers: c.nLayer,
    pad_token_id: c.padTokenId ?? null,
    // Always false, as for Mamba-1 (hfMambaConfigJson): our init applied the rescaling already.
    rescale_prenorm_residual: false,
    residual_in_fp32: c.residualInFp32,
    state_size: c.dState,
    tie_word_embeddings: c.tieEmbeddings,
    time_step_floor: o.timeStepFloor,
    time_step_limit: c.timeStepLimit,
    time_step_max: o.timeStepMax,
    time_step_min: o.timeStepMin,
    // Unused by Mamba2Mixer (dt comes from in_proj, one per head); transformers' default.
    time_step_rank: Math.ceil(c.dModel / 16),
    use_bias: c.useBias,
    use_cache: true,
    use_conv_bias: c.useConvBias,
    vocab_size: c.vocabSize,
  };
}

/** The float-typed fields of MambaConfig and Mamba2Config. */
const FLOAT_KEYS = new Set([
  'initializer_range',
  'layer_norm_epsilon',
  'time_step_floor',
  'time_step_max',
  'time_step_min',
  'time_step_scale',
]);

/**
 * The config as JSON text, float fields with a decimal point even when whole (JSON.stringify writes 1.0
 * as 1), and infinities as transformers writes them (`{"__float__": "Infinity"}`; time_step_limit).
 */
export function hfConfigText(json: Record<string, unknown>): string {
  const mark = '\u0000float:';
  const float = (v: number): unknown =>
    Number.isFinite(v) ? (Number.isInteger(v) ? `${mark}${v}` : v) : { __float__: String(v) };
  const text = JSON.stringify(
    json,
    (k, v: unknown) => {
      if (k === 'time_step_limit' && Array.isArray(v)) return v.map((x) => (typeof x === 'number' ? float(x) : x));
      return FLOAT_KEYS.has(k) && typeof v === 'number' ? float(v) : v;
    },
    2,
  );
  return text.replace(/"\\u0000float:(-?\d+)"/g, '$1.0') + '\n';
}
