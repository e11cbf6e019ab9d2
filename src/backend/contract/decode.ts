import { fail, fmtShape } from '../../errors.js';
import { checkShape } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkSamplingParams, type SamplingParams } from '../sampling.js';
import { checkFloat, checkSameBackend } from './checks.js';

/**
 * Optional kernels that make token-by-token generation cheap where the data lives on a device:
 * sampling without reading the logits back, a fused Mamba-1 step, and recorded replay of a step's
 * launches. Where one is absent the generation loop does the same with the inference kernels and the
 * host `Sampler` (the reference).
 */
export interface DecodeKernels {
  /**
   * Samples one token per row with exactly the semantics of `Sampler` (backend/sampling.ts), where
   * the data lives: on a GPU the logits are never read back and the ids can feed the next step.
   * The CPU backend implements it with `Sampler` itself (the reference).
   */
  sample?(a: SampleArgs): void;

  /**
   * Mamba-1's recurrent step for one layer, fused (fewer dispatches per token). Same result as the
   * composition of kernels in `MambaMixer.step`, which is the reference and runs where this is absent.
   * Returns false, having done nothing, when asked for a fusion it does not do (`a.preNorm` where it
   * is off); without `preNorm` it always runs and returns true.
   */
  mambaStep?(a: MambaStepArgs): boolean;

  /**
   * Declares weights that will not change from now on (a model served for inference), so products
   * with them as the Linear-layout B may keep them in a faster layout (the CPU's gemm packs B per call
   * otherwise: at a batched decode step's few rows, a large part of the product) within maxBytes.
   * `unpackWeights` releases that and must come before any such weight is written.
   */
  packWeights?(weights: readonly Tensor[], maxBytes: number): void;
  unpackWeights?(): void;

  /**
   * Runs `fn` once (its kernels are queued as usual) and records the kernels it launches, so that
   * `replay()` launches them again, on the same tensors with the same parameters, with no host work
   * in between (CUDA graphs' idea). Only GPU work repeats: host-side effects of `fn` (counters such
   * as `ModelState.position`) do not. The tensors `fn` uses must outlive the recording.
   */
  record?(fn: () => void): RecordedWork;

  /**
   * Whether `fusedLinear` takes products of `rows` rows with these weights (their dtypes and layouts):
   * a mixer asks once, before its fused step, and otherwise runs its separate kernels (the reference).
   */
  fusesLinear?(rows: number, weights: readonly Tensor[]): boolean;

  /**
   * One decode product with the elementwise work around it in the same kernel (`FusedLinearArgs`), so a
   * residual block costs a few launches a token; only for what `fusesLinear` accepted. The result equals
   * the composition of the inference kernels it replaces, up to f32 rounding (the order of the sums).
   */
  fusedLinear?(a: FusedLinearArgs): void;
}

/**
 * Arguments of `Backend.fusedLinear` (m rows, weight (p, q) in the Linear layout; out and x may have more
 * dimensions, read as rows × last dimension, as `matmul` reads them):
 *   x' = x (m, q), or one prologue: `norm` rmsnorm(x) · weight; `glu` silu(x[:, :q]) ⊙ x[:, q:] with x
 *        (m, 2q) (SwiGLU's [gate; up] product); `gate` Mamba-2's gated RMSNorm of x by z over one group
 *        (`gatedRmsnorm` with groupSize q), or with a null weight x ⊙ silu(z) (no norm)
 *   v  = x' · weightᵀ [+ bias]
 *   out (m, p) = v, or out + accumulate · v (a residual add with its multiplier)
 *   `conv`: the columns [from, from + channels) of v pass through the causal conv step and SiLU
 *   (`causalConv1d`'s step: the state (m, channels, k) advanced) before they are stored.
 */
export interface FusedLinearArgs {
  out: Tensor;
  x: Tensor;
  weight: Tensor;
  bias?: Tensor | null;
  norm?: { weight: Tensor; eps: number } | null;
  glu?: boolean;
  gate?: { z: Tensor; weight: Tensor | null; eps: number; normBeforeGate: boolean } | null;
  accumulate?: number;
  conv?: { from: number; weight: Tensor; bias: Tensor | null; state: Tensor } | null;
}

/** Checks `fusedLinear`'s arguments; returns (m, q, p). */
export function checkFusedLinear(a: FusedLinearArgs): { m: number; q: number; p: number } {
  const op = 'fusedLinear';
  const { out, x, weight: w } = a;
  checkSameBackend(
    op,
    out,
    x,
    w,
    a.bias,
    a.norm?.weight,
    a.gate?.z,
    a.gate?.weight,
    a.conv?.weight,
    a.conv?.bias,
    a.conv?.state,
  );
  for (const [what, t] of [
    ['out', out],
    ['x', x],
  ] as const)
    if (t.dtype !== 'f32') fail('DTYPE_MISMATCH', `${op}: ${what} must be f32, got ${t.toString()}`);
  const prologues = [a.norm, a.glu, a.gate].filter(Boolean).length;
  if (prologues > 1) fail('BAD_ARGUMENT', `${op}: norm, glu and gate are alternatives; ${prologues} were given`);
  const m = x.rows,
    p = w.rows,
    q = w.cols;
  const xCols = a.glu ? 2 * q : q;
  if (x.cols !== xCols)
    fail(
      'SHAPE_MISMATCH',
      `${op}: x has ${x.cols} columns, expected ${xCols} for a weight of ${fmtShape(w.shape)}${a.glu ? ' (glu: [gate | up])' : ''}`,
    );
  if (out.rows !== m || out.cols !== p)
    fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected (${m}, ${p})`);
  checkFloat(op, 'weight', w, true, ['q4']);
  if (a.bias) {
    checkFloat(op, 'bias', a.bias, true);
    checkShape(op, 'bias', a.bias.shape, [p]);
  }
  const eps = (e: number): void => {
    if (!Number.isFinite(e) || e < 0) fail('BAD_ARGUMENT', `${op}: eps must be a finite number >= 0, got ${e}`);
  };
  if (a.norm) {
    checkFloat(op, 'norm weight', a.norm.weight, true);
    checkShape(op, 'norm weight', a.norm.weight.shape, [q]);
    eps(a.norm.eps);
  }
  if (a.gate) {
    if (a.gate.weight) {
      checkFloat(op, 'gate norm weight', a.gate.weight, true);
      checkShape(op, 'gate norm weight', a.gate.weight.shape, [q]);
    }
    if (a.gate.z.dtype !== 'f32' || a.gate.z.rows !== m || a.gate.z.cols !== q)
      fail('SHAPE_MISMATCH', `${op}: z must be (${m}, ${q}) f32, got ${a.gate.z.toString()}`);
    eps(a.gate.eps);
  }
  if (a.accumulate !== undefined && !Number.isFinite(a.accumulate))
    fail('BAD_ARGUMENT', `${op}: accumulate must be a finite multiplier, got ${a.accumulate}`);
  const c = a.conv;
  if (c) {
    if (a.accumulate !== undefined) fail('BAD_ARGUMENT', `${op}: conv and accumulate are alternatives`);
    const ch = c.weight.rows,
      k = c.weight.cols;
    if (!Number.isInteger(c.from) || c.from < 0 || c.from + ch > p)
      fail('BAD_ARGUMENT', `${op}: conv columns [${c.from}, ${c.from + ch}) do not lie in the product's ${p}`);
    for (const [what, t] of [
      ['conv weight', c.weight],
      ['conv bias', c.bias],
      ['conv state', c.state],
    ] as const)
      if (t && t.dtype !== 'f32') fail('DTYPE_MISMATCH', `${op}: the ${what} must be f32, got ${t.dtype}`);
    if (c.bias) checkShape(op, 'conv bias', c.bias.shape, [ch]);
    if (c.state.size !== m * ch * k || c.state.shape.at(-1) !== k)
      fail('SHAPE_MISMATCH', `${op}: conv state has shape ${fmtShape(c.state.shape)}, expected (${m}, ${ch}, ${k})`);
  }
  return { m, q, p };
}

/** Arguments of `Backend.sample`. */
export interface SampleArgs {
  /** (b) i32: receives the chosen ids. */
  out: Tensor;
  /** (b, V) f32 logits (a view is fine). */
  logits: Tensor;
  params: SamplingParams;
  /** Generation step; with the row index it keys the random draw (`uniform(seed, row, step)`). */
  step: number;
  /**
   * (2) i32 `[step, 0]`: when given, the step is read from element 0 (not `step`) and incremented
   * after the draw, so recorded sampling advances by itself; element 1 must stay 0 (the kernel
   * counts finished rows there and resets it).
   */
  stepCounter?: Tensor | null;
  /**
   * (b, V) i32 presence mask of the tokens already in each sequence (nonzero = seen), for the
   * repetition penalty; the chosen ids are marked in it. Null: no penalty and nothing recorded.
   */
  seen?: Tensor | null;
  /** (V) i32: ids with a nonzero entry are never chosen (their logits count as -infinity). */
  suppress?: Tensor | null;
}

export function checkSample(a: SampleArgs): { b: number; V: number } {
  const op = 'sample';
  checkSameBackend(op, a.out, a.logits, a.seen, a.suppress, a.stepCounter);
  checkFloat(op, 'logits', a.logits);
  if (a.logits.rank !== 2) fail('SHAPE_MISMATCH', `${op}: logits must be (b, V), got ${fmtShape(a.logits.shape)}`);
  const [b, V] = a.logits.shape as [number, number];
  if (V === 0) fail('SHAPE_MISMATCH', `${op}: logits have no columns (V = 0)`);
  if (a.out.dtype !== 'i32') fail('DTYPE_MISMATCH', `${op}: out has dtype ${a.out.dtype}, expected i32`);
  if (a.out.size !== b)
    fail('SHAPE_MISMATCH', `${op}: out has ${a.out.size} elements, expected one per row of logits (${b})`);
  if (a.seen) {
    if (a.seen.dtype !== 'i32') fail('DTYPE_MISMATCH', `${op}: seen has dtype ${a.seen.dtype}, expected i32`);
    if (a.seen.rows !== b || a.seen.cols !== V)
      fail('SHAPE_MISMATCH', `${op}: seen has shape ${fmtShape(a.seen.shape)}, expected (${b}, ${V})`);
  }
  if (a.suppress) {
    if (a.suppress.dtype !== 'i32')
      fail('DTYPE_MISMATCH', `${op}: suppress has dtype ${a.suppress.dtype}, expected i32`);
    checkShape(op, 'suppress', a.suppress.shape, [V]);
  }
  if (a.stepCounter && (a.stepCounter.dtype !== 'i32' || a.stepCounter.size !== 2))
    fail('SHAPE_MISMATCH', `${op}: stepCounter must be a (2) i32 tensor, got ${a.stepCounter.toString()}`);
  if (!Number.isInteger(a.step) || a.step < 0)
    fail('BAD_ARGUMENT', `${op}: step must be an integer >= 0, got ${a.step}`);
  checkSamplingParams(a.params);
  return { b, V };
}

/**
 * Arguments of `Backend.mambaStep` (glossary of mixers/mamba.ts: b batch, d d_model, e d_inner,
 * n d_state, k d_conv, r dt_rank). Weights as in `MambaMixerWeights`, with A = -exp(A_log).
 */
export interface MambaStepArgs {
  /** (b, d) input (the normed residual; with `preNorm`, the residual stream itself). */
  x: Tensor;
  /** (b, d) receives out_proj(y) (with `preNorm`, out_proj(y) is added into it). */
  out: Tensor;
  /**
   * The residual block around the mixer, fused: the mixer's input is rmsnorm(x) · weight =
   * x · rsqrt(mean(x²) + eps) · weight (weight (d), any float) and out <- out + out_proj(y), so with
   * out = x (the residual stream) one call is the whole block: x <- x + mixer(rmsnorm(x) · weight).
   */
  preNorm?: { weight: Tensor; eps: number } | null;
  inProj: Tensor;
  inProjBias: Tensor | null;
  convWeight: Tensor;
  convBias: Tensor | null;
  xProj: Tensor;
  dtProj: Tensor;
  dtProjBias: Tensor;
  A: Tensor;
  D: Tensor;
  outProj: Tensor;
  outProjBias: Tensor | null;
  /** (b, e, k) and (b, e, n) recurrent states, advanced in place. */
  conv: Tensor;
  ssm: Tensor;
  /**
   * RMS norms on dt_low, B and C right after x_proj (Falcon-Mamba: weightless, ones given; Jamba: weighted),
   * weights (r), (n), (n) f32, written to `normed` (b, r + 2n), which dt_proj and the scan then read instead of dbc.
   */
  dtBCNorm?: { eps: number; dt: Tensor; b: Tensor; c: Tensor; normed: Tensor } | null;
  /** Scratch the caller keeps (contents unspecified afterwards): xz (b, 2e), dbc (b, r + 2n), y (b, e). */
  xz: Tensor;
  dbc: Tensor;
  y: Tensor;
  dtRank: number;
}

/** Kernels recorded by `Backend.record`. */
export interface RecordedWork {
  readonly dispatches: number;
  replay(): void;
  dispose(): void;
}
