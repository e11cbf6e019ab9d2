import { fail } from '../errors.js';
import { ConfigReader, limitPair, parseDtRank } from './config-reader.js';
import {
  validateMamba,
  validateMamba2,
  validateMamba3,
  type Mamba2Config,
  type Mamba3Config,
  type MambaConfig,
} from './model-config.js';

// ---- the original mamba_ssm layout ---------------------------------------------------------------
// config.json of `state-spaces/mamba-*` and `mamba2-*` (mamba_ssm/models/config_mamba.py MambaConfig,
// built by MambaLMHeadModel): the block is Mamba (mamba_simple.py) unless ssm_cfg.layer is "Mamba2"
// (mamba2.py) or "Mamba3" (mamba3.py). mamba_ssm builds its modules with `**config` / `**ssm_cfg`, so it rejects keys it does
// not know; so does this parser, instead of ignoring something that might change the computation.

const ORIGINAL_KEYS = [
  'd_model',
  'd_intermediate',
  'n_layer',
  'vocab_size',
  'ssm_cfg',
  'attn_layer_idx',
  'attn_cfg',
  'rms_norm',
  'residual_in_fp32',
  'fused_add_norm',
  'pad_vocab_size_multiple',
  'tie_embeddings',
];
/** Keys of mamba_simple.Mamba / mamba2.Mamba2 that only affect initialisation or the choice of kernel. */
const INIT_ONLY_MAMBA1 = ['layer', 'dt_min', 'dt_max', 'dt_init', 'dt_scale', 'dt_init_floor', 'use_fast_path'];
const INIT_ONLY_MAMBA2 = [
  'layer',
  'conv_init',
  'A_init_range',
  'dt_min',
  'dt_max',
  'dt_init_floor',
  'use_mem_eff_path',
];
/**
 * Keys of mamba3.Mamba3 that only affect initialisation or the choice of kernel (fuse_pregate_headwise_norm
 * fuses the same output norm into the MIMO kernel; dropout is accepted and unused by the module).
 */
const INIT_ONLY_MAMBA3 = ['layer', 'dt_min', 'dt_max', 'dt_init_floor', 'fuse_pregate_headwise_norm', 'dropout'];
/** eps of mamba_ssm's RMSNorms: create_block's norm_epsilon default, and Mamba2's RMSNormGated(eps=1e-5). */
const ORIGINAL_NORM_EPS = 1e-5;

/** The original mamba_ssm config (d_model, n_layer, ssm_cfg, ...) as a Mamba-1, Mamba-2 or Mamba-3 config. */
export function parseOriginalConfig(r: ConfigReader): MambaConfig | Mamba2Config | Mamba3Config {
  for (const k of Object.keys(r.raw)) {
    if (!ORIGINAL_KEYS.includes(k)) {
      fail(
        'CORRUPT_FILE',
        `${r.where}: "${k}" is not a key of mamba_ssm's MambaConfig (expected some of ${ORIGINAL_KEYS.join(', ')})`,
      );
    }
  }
  const dInter = r.int('d_intermediate', 0);
  if (dInter > 0) {
    fail(
      'UNSUPPORTED',
      `${r.where}: d_intermediate ${dInter} adds an MLP after each mixer (mamba_ssm's GatedMLP blocks); mamba-ts ` +
        `runs only the pure SSM stack (d_intermediate 0)`,
      { key: 'd_intermediate' },
    );
  }
  const attn = r.raw.attn_layer_idx ?? [];
  if (!Array.isArray(attn)) {
    fail('CORRUPT_FILE', `${r.where}: "attn_layer_idx" must be a list of layer indices, got ${JSON.stringify(attn)}`);
  }
  if (attn.length > 0) {
    fail(
      'UNSUPPORTED',
      `${r.where}: attn_layer_idx ${JSON.stringify(attn)} makes those layers attention (a hybrid model); mamba-ts ` +
        `runs only SSM layers (attn_layer_idx [])`,
      { key: 'attn_layer_idx' },
    );
  }
  if (!r.bool('rms_norm', true)) {
    fail(
      'UNSUPPORTED',
      `${r.where}: rms_norm false means LayerNorm blocks; mamba-ts implements the RMSNorm blocks (rms_norm true) only`,
      { key: 'rms_norm' },
    );
  }
  r.bool('fused_add_norm', true); // a kernel choice: the fused and unfused add + norm compute the same thing
  const dModel = r.int('d_model');
  const pad = r.int('pad_vocab_size_multiple', 8);
  if (pad < 1) fail('CORRUPT_FILE', `${r.where}: pad_vocab_size_multiple must be >= 1, got ${pad}`);
  const vocab = r.int('vocab_size', 50277);
  // MambaLMHeadModel: vocab_size += pad - vocab_size % pad (the embedding and the head have the padded rows).
  const vocabSize = vocab % pad === 0 ? vocab : vocab + pad - (vocab % pad);
  const rawSsm = r.raw.ssm_cfg ?? {};
  if (typeof rawSsm !== 'object' || Array.isArray(rawSsm) || rawSsm === null) {
    fail('CORRUPT_FILE', `${r.where}: "ssm_cfg" must be an object, got ${JSON.stringify(rawSsm)}`);
  }
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
    const allowed = [
      'd_state',
      'd_conv',
      'expand',
      'headdim',
      'd_ssm',
      'ngroups',
      'D_has_hdim',
      'rmsnorm',
      'norm_before_gate',
      'dt_limit',
      'bias',
      'conv_bias',
      'chunk_size',
      ...INIT_ONLY_MAMBA2,
    ];
    checkKnownKeys(ssm, allowed, 'mamba2.Mamba2');
    const expand = ssm.num('expand', 2);
    const dInner = Math.floor(expand * dModel);
    const headDim = ssm.int('headdim', 64);
    if (ssm.has('d_ssm') && ssm.int('d_ssm') !== dInner) {
      fail(
        'UNSUPPORTED',
        `${ssm.where}: d_ssm ${ssm.int('d_ssm')} runs the SSM on part of d_inner ${dInner} and a gated MLP on the ` +
          `rest; mamba-ts supports d_ssm = d_inner (or absent)`,
        { key: 'd_ssm' },
      );
    }
    if (ssm.bool('D_has_hdim', false)) {
      fail(
        'UNSUPPORTED',
        `${ssm.where}: D_has_hdim true (a D per channel) is not supported; mamba-ts uses one D per head`,
        { key: 'D_has_hdim' },
      );
    }
    if (!ssm.bool('rmsnorm', true)) {
      fail('UNSUPPORTED', `${ssm.where}: rmsnorm false (y * silu(z) without the gated RMSNorm) is not supported`, {
        key: 'rmsnorm',
      });
    }
    if (dInner % headDim !== 0) {
      fail(
        'CORRUPT_FILE',
        `${ssm.where}: d_inner ${dInner} (expand ${expand} x d_model ${dModel}) is not a multiple of headdim ` +
          `${headDim}`,
      );
    }
    const nGroups = ssm.int('ngroups', 1);
    if (nGroups < 1 || dInner % nGroups !== 0) {
      fail('CORRUPT_FILE', `${ssm.where}: ngroups ${nGroups} must divide d_inner ${dInner}`);
    }
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
  if (layer === 'Mamba3') return parseMamba3(ssm, common);
  return fail(
    'UNSUPPORTED',
    `${ssm.where}: layer "${layer}" is not supported; mamba-ts runs "Mamba1", "Mamba2" and "Mamba3"`,
    { key: 'layer' },
  );
}

function checkKnownKeys(r: ConfigReader, allowed: readonly string[], module: string): void {
  for (const k of Object.keys(r.raw)) {
    if (!allowed.includes(k)) {
      fail(
        'CORRUPT_FILE',
        `${r.where}: "${k}" is not an argument of mamba_ssm's ${module} (known: ${allowed.join(', ')})`,
        { key: k },
      );
    }
  }
}

/**
 * ssm_cfg of a Mamba3 block, with mamba3.Mamba3's defaults: d_state 128, expand 2, headdim 64, ngroups 1,
 * rope_fraction 0.5, A_floor 1e-4, is_outproj_norm false, is_mimo false, mimo_rank 4 (used only with
 * is_mimo), chunk_size 64. The official module swallows unknown keys (**kwargs); this parser refuses them,
 * as for the other layers, rather than ignore one that a later version computes with.
 */
function parseMamba3(ssm: ConfigReader, common: Omit<Mamba3Config, keyof Mamba3Only>): Mamba3Config {
  const allowed = [
    'd_state',
    'expand',
    'headdim',
    'ngroups',
    'rope_fraction',
    'A_floor',
    'is_outproj_norm',
    'is_mimo',
    'mimo_rank',
    'chunk_size',
    ...INIT_ONLY_MAMBA3,
  ];
  checkKnownKeys(ssm, allowed, 'mamba3.Mamba3');
  const dModel = common.dModel;
  const expand = ssm.num('expand', 2);
  const dInner = Math.floor(expand * dModel);
  const headDim = ssm.int('headdim', 64);
  if (headDim < 1 || dInner % headDim !== 0) {
    fail(
      'CORRUPT_FILE',
      `${ssm.where}: d_inner ${dInner} (expand ${expand} x d_model ${dModel}) is not a multiple of headdim ${headDim}`,
    );
  }
  const dState = ssm.int('d_state', 128);
  const ropeFraction = ssm.num('rope_fraction', 0.5);
  if (ropeFraction !== 0.5 && ropeFraction !== 1) {
    fail(
      'CORRUPT_FILE',
      `${ssm.where}: rope_fraction must be 0.5 or 1.0 (as mamba3.Mamba3 asserts), got ${ropeFraction}`,
    );
  }
  // Mamba3: split = int(d_state * rope_fraction), made even; one angle per pair.
  let split = Math.floor(dState * ropeFraction);
  if (split % 2 !== 0) split -= 1;
  const isMimo = ssm.bool('is_mimo', false);
  const rank = ssm.int('mimo_rank', 4); // read (and type-checked) either way; SISO runs rank 1
  const cfg: Mamba3Config = {
    ...common,
    arch: 'mamba3',
    dState,
    dConv: 0,
    expand,
    dInner,
    nHeads: dInner / headDim,
    headDim,
    nGroups: ssm.int('ngroups', 1),
    chunkSize: ssm.int('chunk_size', 64),
    isMimo,
    mimoRank: isMimo ? rank : 1,
    numRopeAngles: split / 2,
    ropeFraction,
    aFloor: ssm.num('A_floor', 1e-4),
    isOutprojNorm: ssm.bool('is_outproj_norm', false),
    useBias: false,
    useConvBias: false,
    normEps: ORIGINAL_NORM_EPS,
  };
  validateMamba3(cfg, ssm.where);
  return cfg;
}

/** The fields parseMamba3 fills; the rest come from the common part of the config. */
type Mamba3Only = Omit<
  Mamba3Config,
  | 'dModel'
  | 'nLayer'
  | 'vocabSize'
  | 'residualInFp32'
  | 'tieEmbeddings'
  | 'eosTokenId'
  | 'bosTokenId'
  | 'padTokenId'
  | 'layout'
>;
