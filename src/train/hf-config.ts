import type { MambaConfig } from '../models/config.js';
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

/** MambaConfig's float-typed fields. */
const FLOAT_KEYS = new Set([
  'initializer_range',
  'layer_norm_epsilon',
  'time_step_floor',
  'time_step_max',
  'time_step_min',
  'time_step_scale',
]);

/** The config as JSON text, float fields with a decimal point even when whole (JSON.stringify writes 1.0 as 1). */
export function hfConfigText(json: Record<string, unknown>): string {
  const mark = '\u0000float:';
  const text = JSON.stringify(
    json,
    (k, v: unknown) => (FLOAT_KEYS.has(k) && typeof v === 'number' && Number.isInteger(v) ? `${mark}${v}` : v),
    2,
  );
  return text.replace(/"\\u0000float:(-?\d+)"/g, '$1.0') + '\n';
}
