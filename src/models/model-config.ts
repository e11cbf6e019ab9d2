import { fail } from '../errors.js';

/**
 * The one internal description of a model (ModelConfig), whatever layout its config.json came in,
 * and the checks every config passes before anything is built from it: positive integers within
 * bounds, finite floats in range, and a parameter count a checkpoint can hold. The layout parsers
 * (config-transformers.ts, config-mamba-ssm.ts) fill it; config.ts chooses between them.
 */

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
  /**
   * Falcon-Mamba (model_type "falcon_mamba"): eps of the weightless RMS norms applied to Δ's low-rank input
   * (width r), B and C (width n each) right after x_proj (`mixer_rms_eps`). Absent: no such norms.
   */
  dtBCNormEps?: number;
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
  /** Columns the gated RMSNorm normalises together: e / g in both layouts (mamba_ssm's math; see config-transformers). */
  normGroupSize: number;
}

/**
 * Mamba-3 (Lahoti et al. 2026; docs/mamba3.md; mamba_ssm's Mamba3): no conv (dConv 0), a data-dependent
 * A per head, the exponential-trapezoidal update, rotations of B and C (a complex state), RMSNorm on
 * B and C with biases, an optional output norm, and MIMO of rank R. Glossary as Mamba-2's, plus
 * R mimo_rank (1 for SISO) and S the rotation angles. in_proj's output is [z (e), x (e), B (R·g·n),
 * C (R·g·n), dd_dt (h), dd_A (h), trap (h), angles (S)].
 */
export interface Mamba3Config extends LmConfigCommon {
  arch: 'mamba3';
  nHeads: number;
  headDim: number;
  /** g: groups of heads sharing B and C (mamba_ssm's ngroups = num_bc_heads). */
  nGroups: number;
  /** The official kernels' chunk length (changes rounding only; mamba-ts scans token by token). */
  chunkSize: number;
  isMimo: boolean;
  /** R: rank of the MIMO update; 1 for SISO. */
  mimoRank: number;
  /** S: angles, each rotating a pair of state dims (rope_fraction of d_state, rounded down to even, halved). */
  numRopeAngles: number;
  ropeFraction: number;
  /** A <= -A_floor. */
  aFloor: number;
  /** RMSNorm per head on y before the z gate (is_outproj_norm). */
  isOutprojNorm: boolean;
}

/** Every architecture mamba-ts runs; other issues extend this union. */
export type ModelConfig = MambaConfig | Mamba2Config | Mamba3Config;

/** in_proj rows of Mamba-3: 2e + 2·R·g·n + 3h + S. */
export function mamba3InProjRows(c: Mamba3Config): number {
  return 2 * c.dInner + 2 * c.mimoRank * c.nGroups * c.dState + 3 * c.nHeads + c.numRopeAngles;
}

/** Channels of Mamba-2's conv: x, B and C. */
export function mamba2ConvDim(c: Mamba2Config): number {
  return c.dInner + 2 * c.nGroups * c.dState;
}
// ---- bounds -------------------------------------------------------------------------------------
// A config.json is untrusted input: its sizes decide how much is allocated and how long loops run,
// so every size is checked against a bound before anything is built from it. The bounds are far above
// any published model (a 70B-parameter model has d_model 8192 and 80 layers; Mamba checkpoints have
// d_state <= 256, d_conv 4, vocabularies <= 256k), so they never reject a real model; the checkpoint's
// size then bounds the rest (see checkParameterBytes in build.ts).

/** Each size field's upper bound and its config.json keys (transformers / mamba_ssm), for messages. */
export const CONFIG_BOUNDS = {
  dModel: { max: 65_536, keys: 'hidden_size / d_model' },
  nLayer: { max: 4096, keys: 'num_hidden_layers / n_layer' },
  vocabSize: { max: 1 << 24, keys: 'vocab_size' },
  dState: { max: 4096, keys: 'state_size / d_state' },
  dConv: { max: 1024, keys: 'conv_kernel / d_conv' },
  dInner: { max: 1 << 20, keys: 'intermediate_size / expand x d_model' },
  dtRank: { max: 1 << 20, keys: 'time_step_rank / dt_rank' },
  nHeads: { max: 1 << 20, keys: 'num_heads / d_inner / headdim' },
  headDim: { max: 1 << 20, keys: 'head_dim / headdim' },
  nGroups: { max: 1 << 20, keys: 'n_groups / ngroups' },
  chunkSize: { max: 1 << 16, keys: 'chunk_size' },
  normGroupSize: { max: 1 << 20, keys: 'the gated norm group size' },
} as const;

/** `expand` (d_inner / d_model): published models use 2. */
export const MAX_EXPAND = 64;

type BoundedKey = keyof typeof CONFIG_BOUNDS;

/** Every size a positive integer within its bound; floats finite and in range. */
function validateCommon(c: ModelConfig, keys: readonly BoundedKey[], where: string): void {
  const fields = c as unknown as Record<BoundedKey, number>;
  if (!(Number.isFinite(c.expand) && c.expand > 0 && c.expand <= MAX_EXPAND)) {
    fail('CORRUPT_FILE', `${where}: expand must be a finite number in (0, ${MAX_EXPAND}], got ${c.expand}`, {
      key: 'expand',
      value: c.expand,
      limit: MAX_EXPAND,
    });
  }
  for (const k of keys) {
    const v = fields[k];
    const { max, keys: names } = CONFIG_BOUNDS[k];
    if (!(Number.isSafeInteger(v) && v > 0)) {
      fail('CORRUPT_FILE', `${where}: ${k} (${names}) must be a positive integer, got ${v}`, { key: k, value: v });
    }
    if (v > max) {
      fail(
        'CORRUPT_FILE',
        `${where}: ${k} (${names}) is ${v}, above the limit ${max} (far above any published model)`,
        { key: k, value: v, limit: max },
      );
    }
  }
  if (!(Number.isFinite(c.normEps) && c.normEps > 0 && c.normEps <= 1)) {
    fail('CORRUPT_FILE', `${where}: layer_norm_epsilon must be a finite number in (0, 1], got ${c.normEps}`, {
      key: 'layer_norm_epsilon',
      value: c.normEps,
    });
  }
}

export function validateMamba(c: MambaConfig, where: string): void {
  validateCommon(c, ['dModel', 'nLayer', 'vocabSize', 'dState', 'dConv', 'dInner', 'dtRank'], where);
  const eps = c.dtBCNormEps;
  if (eps !== undefined && !(Number.isFinite(eps) && eps > 0 && eps <= 1)) {
    fail('CORRUPT_FILE', `${where}: mixer_rms_eps must be a finite number in (0, 1], got ${eps}`, {
      key: 'mixer_rms_eps',
      value: eps,
    });
  }
}

export function validateMamba2(c: Mamba2Config, where: string): void {
  const sizes = ['dModel', 'nLayer', 'vocabSize', 'dState', 'dConv', 'dInner'] as const;
  validateCommon(c, [...sizes, 'nHeads', 'headDim', 'nGroups', 'chunkSize', 'normGroupSize'], where);
  if (c.nHeads % c.nGroups !== 0) {
    fail(
      'CORRUPT_FILE',
      `${where}: the ${c.nHeads} heads cannot be split into ${c.nGroups} groups (n_groups must divide num_heads)`,
    );
  }
  if (c.dInner % c.normGroupSize !== 0) {
    fail(
      'CORRUPT_FILE',
      `${where}: the gated norm's group size ${c.normGroupSize} does not divide d_inner ${c.dInner}`,
    );
  }
  const [lo, hi] = c.timeStepLimit;
  if (Number.isNaN(lo) || Number.isNaN(hi) || !(lo <= hi)) {
    fail('CORRUPT_FILE', `${where}: time_step_limit must be [min, max] with min <= max, got [${lo}, ${hi}]`);
  }
}

/** MIMO ranks beyond this are refused (the paper uses 4; the kernels are tested up to 8). */
export const MAX_MIMO_RANK = 64;

export function validateMamba3(c: Mamba3Config, where: string): void {
  const sizes = ['dModel', 'nLayer', 'vocabSize', 'dState', 'dInner'] as const;
  validateCommon(c, [...sizes, 'nHeads', 'headDim', 'nGroups', 'chunkSize'], where);
  if (c.nHeads % c.nGroups !== 0) {
    fail(
      'CORRUPT_FILE',
      `${where}: the ${c.nHeads} heads cannot be split into ${c.nGroups} groups (ngroups must divide the heads)`,
    );
  }
  if (!(Number.isSafeInteger(c.mimoRank) && c.mimoRank >= 1 && c.mimoRank <= MAX_MIMO_RANK)) {
    fail('CORRUPT_FILE', `${where}: mimo_rank must be an integer in [1, ${MAX_MIMO_RANK}], got ${c.mimoRank}`, {
      key: 'mimo_rank',
      value: c.mimoRank,
      limit: MAX_MIMO_RANK,
    });
  }
  if (!(c.numRopeAngles >= 1 && 2 * c.numRopeAngles <= c.dState)) {
    fail(
      'CORRUPT_FILE',
      `${where}: rope_fraction ${c.ropeFraction} of d_state ${c.dState} leaves no pair of state dims to rotate`,
    );
  }
  if (c.isMimo && c.dState % 2 !== 0) {
    fail(
      'CORRUPT_FILE',
      `${where}: MIMO rotates the pairs (i, i + d_state/2), so d_state must be even, got ${c.dState}`,
    );
  }
  if (!(Number.isFinite(c.aFloor) && c.aFloor >= 0)) {
    fail('CORRUPT_FILE', `${where}: A_floor must be a finite number >= 0, got ${c.aFloor}`, { key: 'A_floor' });
  }
}

/**
 * Parameters (elements) of the tensors a checkpoint of this config must hold: the embedding, every
 * layer's tensors, the final norm, and the head unless tied. The same list as expectedMambaTensors /
 * expectedMamba2Tensors (a test checks it), in closed form so a huge config costs nothing to measure.
 */
export function parameterCount(c: ModelConfig): number {
  const { dModel: d, dInner: e, dState: n, dConv: k, vocabSize: V } = c;
  let layer: number;
  if (c.arch === 'mamba') {
    const r = c.dtRank;
    // norm, in_proj, conv1d, x_proj, dt_proj (+ bias), A_log, D, out_proj
    layer = d + 2 * e * d + e * k + (r + 2 * n) * e + e * r + e + e * n + e + d * e;
    if (c.useBias) layer += 2 * e + d;
    if (c.useConvBias) layer += e;
  } else if (c.arch === 'mamba3') {
    const h = c.nHeads,
      R = c.mimoRank,
      p = c.headDim;
    // norm, in_proj, dt_bias, B_bias, C_bias, B_norm, C_norm, D, mimo_x/z/o, output norm, out_proj
    layer = d + mamba3InProjRows(c) * d + h + 2 * h * R * n + 2 * n + h + d * e;
    if (c.isMimo) layer += 3 * h * R * p;
    if (c.isOutprojNorm) layer += e;
  } else {
    const h = c.nHeads,
      conv = mamba2ConvDim(c),
      W = 2 * e + 2 * c.nGroups * n + h;
    // norm, in_proj, conv1d, dt_bias, A_log, D, gated norm, out_proj
    layer = d + W * d + conv * k + 3 * h + e + d * e;
    if (c.useBias) layer += W + d;
    if (c.useConvBias) layer += conv;
  }
  return V * d + c.nLayer * layer + d + (c.tieEmbeddings ? 0 : V * d);
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
    case 'mamba3': // angles (h, S) + ssm (h, p, n) + the previous k (R, h, n) and x (h, p)
      return c.nLayer * c.nHeads * (c.numRopeAngles + c.headDim * c.dState + c.mimoRank * c.dState + c.headDim) * 4;
  }
}
