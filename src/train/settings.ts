import { fail } from '../errors.js';
import { showJson } from '../io/json.js';
import { mamba3InProjRows, parseConfig } from '../models/config.js';
import { CONFIG_BOUNDS, parameterCount, type ModelConfig } from '../models/model-config.js';

/**
 * The settings of a training run, read from the `--config` JSON file (snake_case keys in three
 * sections; every key optional, unknown keys are errors) and stored in the checkpoint so a run can be
 * resumed and repeated:
 *
 *   {
 *     "model":     { "arch": "mamba", "d_model": 256, "n_layer": 4, "d_state": 16, "d_conv": 4, "expand": 2,
 *                    "dt_rank": "auto", "tie_embeddings": true, "use_bias": false, "use_conv_bias": true,
 *                    "norm_eps": 1e-5, "pad_vocab_multiple": 8, "initializer_range": 0.02, "rescale_prenorm_residual": true,
 *                    "head_dim": 64, "n_groups": 1, "chunk_size": 256,
 *                    "rope_fraction": 0.5, "mimo_rank": 0, "outproj_norm": false },
 *                  (head_dim, n_groups, chunk_size: arch "mamba2" and "mamba3"; rope_fraction, mimo_rank,
 *                   outproj_norm: "mamba3" only, which ignores d_conv, use_bias, use_conv_bias and norm_eps
 *                   as mamba_ssm's Mamba3 has no conv and biases and fixes eps at 1e-5; dt_rank: "mamba" only)
 *     "tokenizer": { "type": "bpe", "vocab_size": 4096 },            (or { "type": "byte" })
 *     "train":     { "seq_len": 256, "batch_size": 8, "grad_accum": 1, "lr": 3e-3, "min_lr": 3e-4,
 *                    "warmup_steps": 100, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8,
 *                    "grad_clip": 1.0, "seed": 1234, "val_fraction": 0.05, "eval_every": 100,
 *                    "eval_tokens": 8192, "save_every": 100, "log_every": 10 }
 *   }
 */
export interface ModelSettings {
  arch: 'mamba' | 'mamba2' | 'mamba3';
  dModel: number;
  nLayer: number;
  dState: number;
  dConv: number;
  /** d_inner = expand · d_model; an integer, as transformers' MambaConfig requires. */
  expand: number;
  dtRank: number | 'auto';
  tieEmbeddings: boolean;
  useBias: boolean;
  useConvBias: boolean;
  normEps: number;
  /** The embedding gets the tokenizer's vocabulary padded up to a multiple of this (mamba_ssm pads to 8). */
  padVocabMultiple: number;
  initializerRange: number;
  rescalePrenormResidual: boolean;
  /** Mamba-2: p, channels per head (d_inner / head_dim heads). */
  headDim: number;
  /** Mamba-2: g, groups of heads sharing B and C. */
  nGroups: number;
  /** Mamba-2: Q, the chunk length of the SSD scan (changes rounding only). Mamba-3: mamba_ssm's chunk_size. */
  chunkSize: number;
  /** Mamba-3: the share of the state dims rotated (0.5 or 1, mamba_ssm's rope_fraction). */
  ropeFraction: number;
  /** Mamba-3: 0 for SISO, else the MIMO rank R (mamba_ssm's is_mimo and mimo_rank). */
  mimoRank: number;
  /** Mamba-3: RMSNorm before out_proj (mamba_ssm's is_outproj_norm). */
  outprojNorm: boolean;
}

export interface TokenizerSettings {
  type: 'bpe' | 'byte';
  /** BPE: special token + 256 bytes + merges. */
  vocabSize: number;
}

export interface OptimSettings {
  seqLen: number;
  batchSize: number;
  /** Micro-batches per optimiser step (their gradients are averaged). */
  gradAccum: number;
  lr: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Clip the global gradient norm to this; 0 = off. */
  gradClip: number;
  seed: number;
  valFraction: number;
  evalEvery: number;
  /** Validation tokens per evaluation during training (the final evaluation uses all). */
  evalTokens: number;
  saveEvery: number;
  logEvery: number;
}

export interface TrainSettings {
  model: ModelSettings;
  tokenizer: TokenizerSettings;
  train: OptimSettings;
}

export const DEFAULT_SETTINGS: TrainSettings = {
  model: {
    arch: 'mamba',
    dModel: 256,
    nLayer: 4,
    dState: 16,
    dConv: 4,
    expand: 2,
    dtRank: 'auto',
    tieEmbeddings: true,
    useBias: false,
    useConvBias: true,
    normEps: 1e-5,
    padVocabMultiple: 8,
    initializerRange: 0.02,
    rescalePrenormResidual: true,
    headDim: 64,
    nGroups: 1,
    chunkSize: 256,
    ropeFraction: 0.5,
    mimoRank: 0,
    outprojNorm: false,
  },
  tokenizer: { type: 'bpe', vocabSize: 4096 },
  train: {
    seqLen: 256,
    batchSize: 8,
    gradAccum: 1,
    lr: 3e-3,
    minLr: 3e-4,
    warmupSteps: 100,
    weightDecay: 0.1,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    gradClip: 1,
    seed: 1234,
    valFraction: 0.05,
    evalEvery: 100,
    evalTokens: 8192,
    saveEvery: 100,
    logEvery: 10,
  },
};

type Kind = 'int+' | 'int0' | 'num+' | 'num0' | 'bool' | 'frac';
const SPEC: { [S in keyof TrainSettings]: Record<string, [keyof TrainSettings[S], Kind | readonly string[]]> } = {
  model: {
    arch: ['arch', ['mamba', 'mamba2', 'mamba3']],
    d_model: ['dModel', 'int+'],
    n_layer: ['nLayer', 'int+'],
    d_state: ['dState', 'int+'],
    d_conv: ['dConv', 'int+'],
    expand: ['expand', 'int+'],
    dt_rank: ['dtRank', 'int+'],
    tie_embeddings: ['tieEmbeddings', 'bool'],
    use_bias: ['useBias', 'bool'],
    use_conv_bias: ['useConvBias', 'bool'],
    norm_eps: ['normEps', 'num+'],
    pad_vocab_multiple: ['padVocabMultiple', 'int+'],
    initializer_range: ['initializerRange', 'num+'],
    rescale_prenorm_residual: ['rescalePrenormResidual', 'bool'],
    head_dim: ['headDim', 'int+'],
    n_groups: ['nGroups', 'int+'],
    chunk_size: ['chunkSize', 'int+'],
    rope_fraction: ['ropeFraction', 'num+'],
    mimo_rank: ['mimoRank', 'int0'],
    outproj_norm: ['outprojNorm', 'bool'],
  },
  tokenizer: { type: ['type', ['bpe', 'byte']], vocab_size: ['vocabSize', 'int+'] },
  train: {
    seq_len: ['seqLen', 'int+'],
    batch_size: ['batchSize', 'int+'],
    grad_accum: ['gradAccum', 'int+'],
    lr: ['lr', 'num+'],
    min_lr: ['minLr', 'num0'],
    warmup_steps: ['warmupSteps', 'int0'],
    weight_decay: ['weightDecay', 'num0'],
    beta1: ['beta1', 'frac'],
    beta2: ['beta2', 'frac'],
    eps: ['eps', 'num+'],
    grad_clip: ['gradClip', 'num0'],
    seed: ['seed', 'int0'],
    val_fraction: ['valFraction', 'frac'],
    eval_every: ['evalEvery', 'int+'],
    eval_tokens: ['evalTokens', 'int+'],
    save_every: ['saveEvery', 'int+'],
    log_every: ['logEvery', 'int+'],
  },
};

/** Parses a config object (the JSON of `--config`) over the defaults; `where` names the file in errors. */
export function parseTrainSettings(
  json: unknown,
  where: string,
  base: TrainSettings = DEFAULT_SETTINGS,
): TrainSettings {
  if (!json || typeof json !== 'object' || Array.isArray(json))
    fail('BAD_ARGUMENT', `${where}: expected a JSON object with sections "model", "tokenizer", "train"`);
  const out: TrainSettings = { model: { ...base.model }, tokenizer: { ...base.tokenizer }, train: { ...base.train } };
  for (const [section, body] of Object.entries(json as Record<string, unknown>)) {
    if (!(section in SPEC))
      fail('BAD_ARGUMENT', `${where}: unknown section "${section}"; sections are ${Object.keys(SPEC).join(', ')}`);
    const spec = SPEC[section as keyof TrainSettings] as Record<string, [string, Kind | readonly string[]]>;
    if (!body || typeof body !== 'object' || Array.isArray(body))
      fail('BAD_ARGUMENT', `${where}: "${section}" must be an object`);
    for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
      const entry = spec[key];
      if (!entry)
        fail('BAD_ARGUMENT', `${where}: unknown key "${section}.${key}"; valid keys: ${Object.keys(spec).join(', ')}`);
      const [field, kind] = entry;
      (out[section as keyof TrainSettings] as unknown as Record<string, unknown>)[field] = checkValue(
        `${where}: "${section}.${key}"`,
        value,
        kind,
        key === 'dt_rank',
      );
    }
  }
  validate(out, where);
  return out;
}

function checkValue(what: string, v: unknown, kind: Kind | readonly string[], allowAuto: boolean): unknown {
  if (allowAuto && v === 'auto') return v;
  if (Array.isArray(kind)) {
    if (!kind.includes(v as string)) {
      fail(
        'BAD_ARGUMENT',
        `${what} must be one of ${kind.map((k) => JSON.stringify(k)).join(', ')}, got ${showJson(v)}`,
      );
    }
    return v;
  }
  if (kind === 'bool') {
    if (typeof v !== 'boolean') fail('BAD_ARGUMENT', `${what} must be true or false, got ${showJson(v)}`);
    return v;
  }
  const ok =
    typeof v === 'number' &&
    Number.isFinite(v) &&
    (kind === 'int+'
      ? Number.isInteger(v) && v > 0
      : kind === 'int0'
        ? Number.isInteger(v) && v >= 0
        : kind === 'num+'
          ? v > 0
          : kind === 'num0'
            ? v >= 0
            : v > 0 && v < 1);
  const want = (
    {
      'int+': 'a positive integer',
      int0: 'a non-negative integer',
      'num+': 'a positive number',
      num0: 'a number >= 0',
      frac: 'a number in (0, 1)',
    } as Record<string, string>
  )[kind as string];
  if (!ok) fail('BAD_ARGUMENT', `${what} must be ${want}${allowAuto ? ' or "auto"' : ''}, got ${showJson(v)}`);
  return v;
}

function validate(s: TrainSettings, where: string): void {
  if (s.tokenizer.type === 'bpe' && s.tokenizer.vocabSize < 257 + 1)
    fail(
      'BAD_ARGUMENT',
      `${where}: "tokenizer.vocab_size" must be at least 258 for a BPE (1 special token + 256 bytes + merges), got ${s.tokenizer.vocabSize}`,
    );
  if (s.train.minLr > s.train.lr)
    fail('BAD_ARGUMENT', `${where}: "train.min_lr" (${s.train.minLr}) exceeds "train.lr" (${s.train.lr})`);
  if (s.train.seed > 0xffffffff) fail('BAD_ARGUMENT', `${where}: "train.seed" must be below 2^32`);
  validateModelSize(s, where);
}

/**
 * Bytes per parameter while training: the f32 weight, its gradient and Adam's two moments.
 * Activations come on top; this bounds what the settings alone imply.
 */
const TRAIN_BYTES_PER_PARAMETER = 16;
/** Training runs on one machine's CPU or GPU: weights, gradients and moments must fit in this. */
export const MAX_TRAIN_PARAMETER_BYTES = 32 * 1024 ** 3;
/** One tensor's f32 data is one typed array (and one wasm memory region on the CPU): 2 GiB at most. */
export const MAX_TRAIN_TENSOR_BYTES = 2 * 1024 ** 3;

/** The model's sizes within the loader's bounds, and its training memory within a machine's. */
function validateModelSize(s: TrainSettings, where: string): void {
  const m = s.model;
  const vocab = s.tokenizer.type === 'bpe' ? s.tokenizer.vocabSize : 256 + 1;
  const vocabSize = Math.ceil(vocab / m.padVocabMultiple) * m.padVocabMultiple;
  const dInner = Math.floor(m.expand * m.dModel);
  const dtRank = m.dtRank === 'auto' ? Math.ceil(m.dModel / 16) : m.dtRank;
  const sizes: [keyof typeof CONFIG_BOUNDS, string, number][] = [
    ['dModel', 'model.d_model', m.dModel],
    ['nLayer', 'model.n_layer', m.nLayer],
    ['dState', 'model.d_state', m.dState],
    ['dConv', 'model.d_conv', m.dConv],
    ['dInner', 'model.expand x model.d_model', dInner],
    ['dtRank', 'model.dt_rank', dtRank],
    ['vocabSize', 'tokenizer.vocab_size (padded)', vocabSize],
    ['headDim', 'model.head_dim', m.headDim],
    ['nGroups', 'model.n_groups', m.nGroups],
    ['chunkSize', 'model.chunk_size', m.chunkSize],
  ];
  for (const [k, key, v] of sizes) {
    const max = CONFIG_BOUNDS[k].max;
    if (v > max) {
      fail('BAD_ARGUMENT', `${where}: "${key}" is ${v}, above the limit ${max}`, { key, value: v, limit: max });
    }
  }
  if (m.arch === 'mamba3') {
    if (m.ropeFraction !== 0.5 && m.ropeFraction !== 1)
      fail(
        'BAD_ARGUMENT',
        `${where}: "model.rope_fraction" must be 0.5 or 1 (as mamba_ssm's Mamba3), got ${m.ropeFraction}`,
      );
    if (m.mimoRank > 8) fail('BAD_ARGUMENT', `${where}: "model.mimo_rank" must be 0 (SISO) to 8, got ${m.mimoRank}`);
  }
  if (m.arch === 'mamba2' || m.arch === 'mamba3') {
    if (dInner % m.headDim !== 0)
      fail(
        'BAD_ARGUMENT',
        `${where}: "model.head_dim" (${m.headDim}) must divide d_inner = expand x d_model = ${dInner} (the heads)`,
      );
    if ((dInner / m.headDim) % m.nGroups !== 0)
      fail(
        'BAD_ARGUMENT',
        `${where}: "model.n_groups" (${m.nGroups}) must divide the ${dInner / m.headDim} heads (d_inner / head_dim)`,
      );
  }
  const c = settingsModelConfig(m, vocabSize, { eos: undefined, bos: undefined, pad: undefined });
  const inRows =
    c.arch === 'mamba2'
      ? 2 * dInner + 2 * c.nGroups * m.dState + c.nHeads
      : c.arch === 'mamba3'
        ? mamba3InProjRows(c)
        : 2 * dInner;
  const largest = Math.max(vocabSize * m.dModel, inRows * m.dModel, dInner * (dtRank + 2 * m.dState)) * 4;
  if (largest > MAX_TRAIN_TENSOR_BYTES) {
    fail(
      'BAD_ARGUMENT',
      `${where}: the model's largest matrix would take ${largest} bytes, above the ` +
        `${MAX_TRAIN_TENSOR_BYTES}-byte limit for one tensor; make d_model, expand or the vocabulary smaller`,
      {
        actual: largest,
        limit: MAX_TRAIN_TENSOR_BYTES,
      },
    );
  }
  const params = parameterCount(c);
  const bytes = params * TRAIN_BYTES_PER_PARAMETER;
  if (bytes > MAX_TRAIN_PARAMETER_BYTES) {
    fail(
      'BAD_ARGUMENT',
      `${where}: the model has ${params} parameters, which need ${bytes} bytes to train (weights, ` +
        `gradients and Adam's moments at ${TRAIN_BYTES_PER_PARAMETER} bytes each), above the ` +
        `${MAX_TRAIN_PARAMETER_BYTES}-byte limit`,
      {
        parameters: params,
        actual: bytes,
        limit: MAX_TRAIN_PARAMETER_BYTES,
      },
    );
  }
}

export interface TokenRoles {
  eos: number | undefined;
  bos: number | undefined;
  pad: number | undefined;
}

/**
 * The model config the settings describe, for a vocabulary of `vocabSize` (already padded). Mamba-2's
 * norm fields are transformers' (`settingsConfigFor` reads the config back through the loader's parser).
 */
export function settingsModelConfig(m: ModelSettings, vocabSize: number, roles: TokenRoles): ModelConfig {
  const dInner = Math.floor(m.expand * m.dModel);
  const common = {
    dModel: m.dModel,
    nLayer: m.nLayer,
    vocabSize,
    dState: m.dState,
    dConv: m.dConv,
    expand: m.expand,
    dInner,
    useBias: m.useBias,
    useConvBias: m.useConvBias,
    normEps: m.normEps,
    residualInFp32: true,
    tieEmbeddings: m.tieEmbeddings,
    eosTokenId: roles.eos,
    bosTokenId: roles.bos ?? roles.eos,
    padTokenId: roles.pad ?? roles.eos,
    layout: 'hf' as const,
  };
  if (m.arch === 'mamba3') {
    // through mamba_ssm's config.json and the loader's parser: the model trained is the one loaded back
    const json = {
      d_model: m.dModel,
      n_layer: m.nLayer,
      vocab_size: vocabSize,
      ssm_cfg: {
        layer: 'Mamba3',
        d_state: m.dState,
        expand: m.expand,
        headdim: m.headDim,
        ngroups: m.nGroups,
        rope_fraction: m.ropeFraction,
        is_mimo: m.mimoRank > 0,
        mimo_rank: m.mimoRank > 0 ? m.mimoRank : 4,
        is_outproj_norm: m.outprojNorm,
        chunk_size: m.chunkSize,
      },
      pad_vocab_size_multiple: 1,
      tie_embeddings: m.tieEmbeddings,
    };
    const c = parseConfig(json, 'model settings (as a mamba_ssm config.json)');
    return { ...c, eosTokenId: roles.eos, bosTokenId: roles.bos ?? roles.eos, padTokenId: roles.pad ?? roles.eos };
  }
  if (m.arch === 'mamba2')
    return {
      ...common,
      arch: 'mamba2',
      nHeads: Math.floor(dInner / m.headDim),
      headDim: m.headDim,
      nGroups: m.nGroups,
      chunkSize: m.chunkSize,
      timeStepLimit: [0, Infinity],
      normBeforeGate: false,
      normGroupSize: dInner,
    };
  return { ...common, arch: 'mamba', dtRank: m.dtRank === 'auto' ? Math.ceil(m.dModel / 16) : m.dtRank };
}

/** The settings back as the config JSON (snake_case), for the checkpoint and for `--config` files. */
export function settingsToJson(s: TrainSettings): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const section of Object.keys(SPEC) as (keyof TrainSettings)[]) {
    out[section] = {};
    for (const [key, [field]] of Object.entries(SPEC[section] as Record<string, [string, unknown]>)) {
      out[section][key] = (s[section] as unknown as Record<string, unknown>)[field];
    }
  }
  return out;
}
