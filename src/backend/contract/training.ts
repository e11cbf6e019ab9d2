import { fail, fmtShape } from '../../errors.js';
import { checkShape } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkFloat, checkSameBackend } from './checks.js';
import {
  checkConv,
  checkScan,
  checkSsdScan,
  type SelectiveScanArgs,
  type SsdDims,
  type SsdScanArgs,
  type UnaryOp,
} from './inference.js';

/**
 * Training: reductions, losses, backward kernels, optimiser (docs/autograd.md).
 * Optional: a backend without them runs inference only, and the ops that need one throw UNSUPPORTED
 * naming it (`requireKernel`), so a backend can gain them one at a time.
 * Every backward kernel overwrites its outputs (the autograd engine accumulates), reads the forward's
 * inputs again instead of saved intermediates where that is cheap, and accumulates in f64 on the CPU.
 */
export interface TrainingKernels {
  /**
   * Column reduction over rows: out[j] <- [out[j] +] sum_i f(x[i, j]), f = identity ('sum') or
   * square ('sumSquares'). x (m, p); out (p) (any shape of p elements). Bias gradients, broadcast
   * gradients, gradient norms.
   */
  reduceRows?(op: ReduceOp, out: Tensor, x: Tensor, accumulate?: boolean): void;

  /**
   * Gradient of an elementwise function: dx <- g * f'(x), with y = f(x) from the forward (some
   * derivatives are cheaper from y: exp, sigmoid, tanh, sqrt). dx, g, x, y the same shape.
   */
  unaryBackward?(op: UnaryOp, dx: Tensor, g: Tensor, x: Tensor, y: Tensor): void;

  /** Scatter-add, the gradient of `embedding`: dTable[ids[i]] += g[i]. dTable (V, d) f32 (not cleared); ids (m); g (m, d). */
  embeddingBackward?(dTable: Tensor, ids: Tensor, g: Tensor): void;

  /**
   * Gradient of out = x * rsqrt(mean(x^2) + eps) * weight over rows of width d (no residual):
   *   inv = rsqrt(mean(x^2) + eps),  gw = g * weight
   *   dx  = inv * gw - x * inv^3 * mean(gw * x)
   *   dWeight[c] = sum over rows of g * x * inv
   * dx, g, x (m, d); weight, dWeight (d).
   */
  rmsnormBackward?(dx: Tensor, dWeight: Tensor, g: Tensor, x: Tensor, weight: Tensor, eps: number): void;

  /**
   * Gradient of `causalConv1d` without a state (zeros before t = 0). With s the pre-activation
   * (recomputed) and gs = g * silu'(s) (or g without SiLU):
   *   dx[b,t,c] = sum_j gs[b, t+k-1-j, c] * weight[c,j]    (terms past the end are zero)
   *   dWeight[c,j] = sum_{b,t} gs[b,t,c] * x[b, t-k+1+j, c];  dBias[c] = sum_{b,t} gs[b,t,c]
   * dx, g, x (b, l, e); weight, dWeight (e, k); bias, dBias (e) or null (both or neither).
   */
  causalConv1dBackward?(a: CausalConv1dBackwardArgs): void;

  /**
   * Gradient of `selectiveScan` (the math is in cpu/selective-scan-backward.ts). The states h_t are
   * not stored by the forward: the kernel recomputes them from the inputs chunk by chunk (states at
   * chunk starts first, then each chunk again in reverse order), so its extra memory is
   * O(b·e·n·(l/chunk + chunk)), not O(b·e·n·l).
   */
  selectiveScanBackward?(a: SelectiveScanBackwardArgs): void;

  /**
   * Gradient of `ssdScan` (Mamba-2; the math is in cpu/reference/ssd-scan-backward.ts). Like
   * `selectiveScanBackward`, it recomputes the states chunk by chunk instead of reading stored ones.
   */
  ssdScanBackward?(a: SsdScanBackwardArgs): void;

  /**
   * Cross-entropy of rows of logits against target ids, targets < 0 ignored (PyTorch's ignore_index):
   *   nll_i = logsumexp(logits[i]) - logits[i, targets[i]]
   *   out (1) <- sum_i nll_i ('sum') or that over the number of rows with a target ('mean'; 0 if none)
   * logits (m, V); targets (m) i32 < V (an id >= V is TOKEN_OUT_OF_RANGE).
   */
  crossEntropy?(out: Tensor, logits: Tensor, targets: Tensor, reduction: LossReduction): void;

  /**
   * Its gradient: dLogits[i] <- g[0] * s * (softmax(logits[i]) - onehot(targets[i])), zero rows for
   * ignored targets; s = 1 ('sum') or 1 / (rows with a target) ('mean'). g (1) is dL/d(out).
   */
  crossEntropyBackward?(dLogits: Tensor, logits: Tensor, targets: Tensor, g: Tensor, reduction: LossReduction): void;

  /**
   * One AdamW step in place (Loshchilov & Hutter, decoupled weight decay; PyTorch's torch.optim.AdamW):
   *   g = grad * gradScale;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
   *   p <- p * (1 - lr * weightDecay)
   *   p <- p - lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
   * param, grad, m, v the same shape, f32; step counts from 1.
   */
  adamwStep?(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWStepOptions): void;
}

/** The optional kernels of the contract that gradients and optimisers need. */
export type TrainingKernel = keyof TrainingKernels;

const TRAINING_KERNELS: readonly TrainingKernel[] = [
  'reduceRows',
  'unaryBackward',
  'embeddingBackward',
  'rmsnormBackward',
  'causalConv1dBackward',
  'selectiveScanBackward',
  'ssdScanBackward',
  'crossEntropy',
  'crossEntropyBackward',
  'adamwStep',
];

/** The backend's kernel `k`, bound to it; UNSUPPORTED naming the kernel when the backend lacks it. */
export function requireKernel<K extends TrainingKernel>(
  bk: TrainingKernels & { readonly name: string },
  k: K,
): NonNullable<TrainingKernels[K]> {
  const f = bk[k] as ((...args: never[]) => void) | undefined;
  if (!f)
    fail(
      'UNSUPPORTED',
      `the ${bk.name} backend has no ${k} kernel yet (needed for training and gradients); use the cpu backend`,
      { backend: bk.name, kernel: k },
    );
  return f.bind(bk) as NonNullable<TrainingKernels[K]>;
}

/** Which training kernels a backend lacks (for messages and `info`). */
export function missingTrainingKernels(bk: TrainingKernels): TrainingKernel[] {
  return TRAINING_KERNELS.filter((k) => typeof bk[k] !== 'function');
}

function checkSameRowsCols(op: string, what: string, t: Tensor, rows: number, cols: number, like: string): void {
  if (t.rows !== rows || t.cols !== cols)
    fail(
      'SHAPE_MISMATCH',
      `${op}: ${what} has shape ${fmtShape(t.shape)}, expected the shape of ${like} (${rows} rows x ${cols})`,
    );
}

export type ReduceOp = 'sum' | 'sumSquares';

export function checkReduceRows(out: Tensor, x: Tensor): { m: number; p: number } {
  const op = 'reduceRows';
  checkSameBackend(op, out, x);
  checkFloat(op, 'x', x);
  checkFloat(op, 'out', out);
  if (out.size !== x.cols || (out.rank > 1 && !out.isContiguous))
    fail(
      'SHAPE_MISMATCH',
      `${op}: out has shape ${fmtShape(out.shape)}, expected ${x.cols} contiguous elements (the columns of x ${fmtShape(x.shape)})`,
    );
  return { m: x.rows, p: x.cols };
}

export function checkUnaryBackward(op: string, dx: Tensor, g: Tensor, x: Tensor, y: Tensor): void {
  const name = `unaryBackward(${op})`;
  checkSameBackend(name, dx, g, x, y);
  for (const [what, t] of [
    ['dx', dx],
    ['g', g],
    ['x', x],
    ['y', y],
  ] as const) {
    checkFloat(name, what, t);
    checkSameRowsCols(name, what, t, x.rows, x.cols, 'x');
  }
}

export function checkEmbeddingBackward(dTable: Tensor, ids: Tensor, g: Tensor): { m: number; d: number } {
  const op = 'embeddingBackward';
  checkSameBackend(op, dTable, ids, g);
  if (ids.dtype !== 'i32') fail('DTYPE_MISMATCH', `${op}: ids has dtype ${ids.dtype}, expected i32`);
  checkFloat(op, 'dTable', dTable);
  checkFloat(op, 'g', g);
  if (dTable.rank !== 2) fail('SHAPE_MISMATCH', `${op}: dTable must be (V, d), got ${fmtShape(dTable.shape)}`);
  const m = ids.size,
    d = dTable.cols;
  if (!ids.isContiguous && ids.rank > 1) fail('SHAPE_MISMATCH', `${op}: ids must be contiguous`);
  if (g.rows !== m || g.cols !== d)
    fail('SHAPE_MISMATCH', `${op}: g has shape ${fmtShape(g.shape)}, expected (${m}, ${d}): one row of width d per id`);
  return { m, d };
}

export function checkRmsnormBackward(
  dx: Tensor,
  dWeight: Tensor,
  g: Tensor,
  x: Tensor,
  weight: Tensor,
): { m: number; d: number } {
  const op = 'rmsnormBackward';
  checkSameBackend(op, dx, dWeight, g, x, weight);
  const m = x.rows,
    d = x.cols;
  for (const [what, t] of [
    ['dx', dx],
    ['g', g],
    ['x', x],
  ] as const) {
    checkFloat(op, what, t);
    checkSameRowsCols(op, what, t, m, d, 'x');
  }
  checkFloat(op, 'weight', weight);
  checkFloat(op, 'dWeight', dWeight);
  checkShape(op, 'weight', weight.shape, [d]);
  checkShape(op, 'dWeight', dWeight.shape, [d]);
  return { m, d };
}

export interface CausalConv1dBackwardArgs {
  dx: Tensor;
  dWeight: Tensor;
  dBias: Tensor | null;
  g: Tensor;
  x: Tensor;
  weight: Tensor;
  bias: Tensor | null;
  silu: boolean;
}

export function checkConvBackward(a: CausalConv1dBackwardArgs): { b: number; l: number; e: number; k: number } {
  const op = 'causalConv1dBackward';
  const dims = checkConv(a.g, a.x, a.weight, a.bias, null);
  checkSameBackend(op, a.dx, a.dWeight, a.dBias, a.g);
  checkFloat(op, 'dx', a.dx);
  checkFloat(op, 'dWeight', a.dWeight);
  checkShape(op, 'dx', a.dx.shape, a.x.shape);
  checkShape(op, 'dWeight', a.dWeight.shape, a.weight.shape);
  if (!!a.bias !== !!a.dBias) fail('BAD_ARGUMENT', `${op}: dBias must be given exactly when bias is`);
  if (a.dBias) {
    checkFloat(op, 'dBias', a.dBias);
    checkShape(op, 'dBias', a.dBias.shape, [dims.e]);
  }
  return dims;
}

/**
 * Arguments of the selective scan's gradient: the forward's inputs (as in SelectiveScanArgs, without
 * y and hOut), dy = dL/dy, and one output per input, each overwritten: du, dDelta (b, l, e); dA (e, n);
 * dB, dC (b, l, n); dD, dDeltaBias (e) where D, deltaBias are given; dz where z is; dh0 (b, e, n) where
 * h0 is (null there: not wanted). `chunk`: length of the recompute chunks (default 64).
 */
export interface SelectiveScanBackwardArgs extends Omit<SelectiveScanArgs, 'y' | 'hOut'> {
  dy: Tensor;
  du: Tensor;
  dDelta: Tensor;
  dA: Tensor;
  dB: Tensor;
  dC: Tensor;
  dD: Tensor | null;
  dz: Tensor | null;
  dDeltaBias: Tensor | null;
  dh0: Tensor | null;
  chunk?: number;
}

export function checkScanBackward(s: SelectiveScanBackwardArgs): { b: number; l: number; e: number; n: number } {
  const op = 'selectiveScanBackward';
  const dims = checkScan({ ...s, y: s.dy, hOut: null });
  const { b, l, e, n } = dims;
  checkSameBackend(op, s.dy, s.du, s.dDelta, s.dA, s.dB, s.dC, s.dD, s.dz, s.dDeltaBias, s.dh0);
  const want: [string, Tensor | null, Tensor | null, number[]][] = [
    ['du', s.du, s.u, [b, l, e]],
    ['dDelta', s.dDelta, s.delta, [b, l, e]],
    ['dA', s.dA, s.A, [e, n]],
    ['dB', s.dB, s.B, [b, l, n]],
    ['dC', s.dC, s.C, [b, l, n]],
    ['dD', s.dD, s.D, [e]],
    ['dz', s.dz, s.z, [b, l, e]],
    ['dDeltaBias', s.dDeltaBias, s.deltaBias, [e]],
  ];
  for (const [what, grad, input, shape] of want) {
    if (!!grad !== !!input) fail('BAD_ARGUMENT', `${op}: ${what} must be given exactly when ${what.slice(1)} is`);
    if (grad) {
      checkFloat(op, what, grad);
      checkShape(op, what, grad.shape, shape);
    }
  }
  if (s.dh0) {
    if (!s.h0) fail('BAD_ARGUMENT', `${op}: dh0 needs h0`);
    checkFloat(op, 'dh0', s.dh0);
    checkShape(op, 'dh0', s.dh0.shape, [b, e, n]);
  }
  if (s.chunk !== undefined && !(Number.isInteger(s.chunk) && s.chunk > 0))
    fail('BAD_ARGUMENT', `${op}: chunk must be a positive integer, got ${s.chunk}`);
  return dims;
}

/**
 * Arguments of the SSD scan's gradient: the forward's inputs (as in SsdScanArgs, without y and hOut;
 * `chunkSize` is not used), dy = dL/dy (b, l, h·p), and one output per input, each overwritten:
 * dx (b, l, h·p); dDt (b, l, h) (of dt before bias); dA (h); dB, dC (b, l, g·n); dD, dDtBias (h) where
 * D, dtBias are given; dh0 (b, h, p, n) where h0 is (null there: not wanted). `chunk`: length of the
 * recompute chunks (default 64). dt's gradient is zero where `dtLimit` clamps it (PyTorch's clamp).
 */
export interface SsdScanBackwardArgs extends Omit<SsdScanArgs, 'y' | 'hOut'> {
  dy: Tensor;
  dx: Tensor;
  dDt: Tensor;
  dA: Tensor;
  dB: Tensor;
  dC: Tensor;
  dD: Tensor | null;
  dDtBias: Tensor | null;
  dh0: Tensor | null;
  chunk?: number;
}

export function checkSsdScanBackward(s: SsdScanBackwardArgs): SsdDims {
  const op = 'ssdScanBackward';
  const dims = checkSsdScan({ ...s, y: s.dy, hOut: null });
  const { b, l, h, p, g, n } = dims;
  checkSameBackend(op, s.dy, s.dx, s.dDt, s.dA, s.dB, s.dC, s.dD, s.dDtBias, s.dh0);
  const want: [string, Tensor | null, string, Tensor | null, number[]][] = [
    ['dx', s.dx, 'x', s.x, [b, l, h * p]],
    ['dDt', s.dDt, 'dt', s.dt, [b, l, h]],
    ['dA', s.dA, 'A', s.A, [h]],
    ['dB', s.dB, 'B', s.B, [b, l, g * n]],
    ['dC', s.dC, 'C', s.C, [b, l, g * n]],
    ['dD', s.dD, 'D', s.D, [h]],
    ['dDtBias', s.dDtBias, 'dtBias', s.dtBias, [h]],
  ];
  for (const [what, grad, name, input, shape] of want) {
    if (!!grad !== !!input) fail('BAD_ARGUMENT', `${op}: ${what} must be given exactly when ${name} is`);
    if (grad) {
      checkFloat(op, what, grad);
      checkShape(op, what, grad.shape, shape);
    }
  }
  if (s.dh0) {
    if (!s.h0) fail('BAD_ARGUMENT', `${op}: dh0 needs h0`);
    checkFloat(op, 'dh0', s.dh0);
    checkShape(op, 'dh0', s.dh0.shape, [b, h, p, n]);
  }
  if (s.chunk !== undefined && !(Number.isInteger(s.chunk) && s.chunk > 0))
    fail('BAD_ARGUMENT', `${op}: chunk must be a positive integer, got ${s.chunk}`);
  return dims;
}

export type LossReduction = 'mean' | 'sum';

export function checkCrossEntropy(
  op: string,
  out: Tensor,
  logits: Tensor,
  targets: Tensor,
  outShape: 'scalar' | 'logits',
): { m: number; V: number } {
  checkSameBackend(op, out, logits, targets);
  checkFloat(op, 'logits', logits);
  checkFloat(op, 'out', out);
  if (targets.dtype !== 'i32') fail('DTYPE_MISMATCH', `${op}: targets has dtype ${targets.dtype}, expected i32`);
  const m = logits.rows,
    V = logits.cols;
  if (targets.size !== m || (targets.rank > 1 && !targets.isContiguous))
    fail(
      'SHAPE_MISMATCH',
      `${op}: targets has shape ${fmtShape(targets.shape)}, expected ${m} contiguous ids (one per row of logits ${fmtShape(logits.shape)})`,
    );
  if (outShape === 'scalar' && out.size !== 1)
    fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected one element`);
  if (outShape === 'logits') checkSameRowsCols(op, 'dLogits', out, m, V, 'logits');
  return { m, V };
}

export interface AdamWStepOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number, for the bias corrections. */
  step: number;
  /** Multiplies the gradient first (gradient clipping by global norm; loss scaling). Default 1. */
  gradScale?: number;
}

export function checkAdamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWStepOptions): void {
  const op = 'adamwStep';
  checkSameBackend(op, param, grad, m, v);
  for (const [what, t] of [
    ['param', param],
    ['grad', grad],
    ['m', m],
    ['v', v],
  ] as const) {
    checkFloat(op, what, t);
    checkShape(op, what, t.shape, param.shape);
  }
  if (!(Number.isInteger(o.step) && o.step >= 1))
    fail('BAD_ARGUMENT', `${op}: step must be an integer >= 1, got ${o.step}`);
  for (const k of ['lr', 'beta1', 'beta2', 'eps', 'weightDecay'] as const) {
    if (!Number.isFinite(o[k]) || o[k] < 0)
      fail('BAD_ARGUMENT', `${op}: ${k} must be a finite number >= 0, got ${o[k]}`);
  }
  if (o.beta1 >= 1 || o.beta2 >= 1)
    fail('BAD_ARGUMENT', `${op}: beta1 and beta2 must be below 1, got ${o.beta1}, ${o.beta2}`);
}
