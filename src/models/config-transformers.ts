import { fail } from '../errors.js';
import { type ConfigReader, limitPair, parseDtRank } from './config-reader.js';
import {
  validateMamba,
  validateMamba2,
  type LmConfigCommon,
  type Mamba2Config,
  type MambaConfig,
} from './model-config.js';

/**
 * config.json as transformers writes it (`MambaConfig`, model_type "mamba"; `Mamba2Config`,
 * model_type "mamba2"), read into the internal ModelConfig with that library's defaults.
 */

/** Both transformers configs name the activation; Mamba and Mamba-2 are defined with SiLU only. */
function requireSilu(r: ConfigReader): void {
  const act = r.str('hidden_act', 'silu');
  if (act !== 'silu') {
    fail('UNSUPPORTED', `${r.where}: hidden_act "${act}" is not supported (Mamba and Mamba-2 use "silu")`);
  }
}

/** The special token ids of a transformers config. */
function hfTokenIds(r: ConfigReader): Pick<LmConfigCommon, 'eosTokenId' | 'bosTokenId' | 'padTokenId'> {
  return {
    eosTokenId: r.tokenId('eos_token_id'),
    bosTokenId: r.tokenId('bos_token_id'),
    padTokenId: r.tokenId('pad_token_id'),
  };
}
/** transformers' `MambaConfig` (model_type "mamba"); defaults are that class's defaults. */
export function parseHfMambaConfig(r: ConfigReader): MambaConfig {
  return parseHfMamba1(r, true);
}

/**
 * transformers' `FalconMambaConfig` (model_type "falcon_mamba", tiiuae/falcon-mamba-7b): Mamba-1 with weightless
 * RMS norms (eps `mixer_rms_eps`, default 1e-6) on Δ's low-rank input, B and C right after x_proj. Its class
 * defaults differ from MambaConfig's only in use_bias (false) and the special token ids (0).
 */
export function parseHfFalconMambaConfig(r: ConfigReader): MambaConfig {
  const cfg: MambaConfig = { ...parseHfMamba1(r, false), dtBCNormEps: r.num('mixer_rms_eps', 1e-6) };
  cfg.eosTokenId ??= r.has('eos_token_id') ? undefined : 0;
  cfg.bosTokenId ??= r.has('bos_token_id') ? undefined : 0;
  cfg.padTokenId ??= r.has('pad_token_id') ? undefined : 0;
  validateMamba(cfg, r.where);
  return cfg;
}

/** Mamba-1 as transformers' MambaConfig and FalconMambaConfig write it (their use_bias defaults differ). */
function parseHfMamba1(r: ConfigReader, useBiasDefault: boolean): MambaConfig {
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
    useBias: r.bool('use_bias', useBiasDefault),
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
  const nHeads = r.int('num_heads', 128),
    headDim = r.int('head_dim', 64),
    nGroups = r.int('n_groups', 8);
  // Mamba2Mixer uses intermediate_size = int(expand * hidden_size) and views x as (num_heads, head_dim);
  // Mamba2Config.validate_architecture requires the two to agree.
  const dInner = Math.floor(expand * dModel);
  if (dInner !== nHeads * headDim) {
    fail(
      'CORRUPT_FILE',
      `${r.where}: hidden_size * expand (${dModel} * ${expand} = ${dInner}) must equal num_heads * head_dim ` +
        `(${nHeads} * ${headDim} = ${nHeads * headDim})`,
    );
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
    nGroups,
    chunkSize: r.int('chunk_size', 256),
    timeStepLimit: limitPair(r, 'time_step_limit', [0, Infinity]),
    useBias: r.bool('use_bias', false),
    useConvBias: r.bool('use_conv_bias', true),
    normEps: r.num('layer_norm_epsilon', 1e-5),
    // The gate comes first (transformers ignores a `norm_before_gate` key), and the norm is per group of
    // d_inner / n_groups channels as in mamba_ssm and llama.cpp, which the checkpoints (Codestral: 8 groups)
    // were trained with. transformers' MambaRMSNormGated normalises across all groups (transformers#40861).
    normBeforeGate: false,
    normGroupSize: dInner % nGroups === 0 ? dInner / nGroups : dInner, // (else validateMamba2 names the groups)
    residualInFp32: r.bool('residual_in_fp32', true),
    tieEmbeddings: r.bool('tie_word_embeddings', false),
    ...hfTokenIds(r),
    layout: 'hf',
  };
  validateMamba2(cfg, r.where);
  return cfg;
}
