import { fail, fmtShape } from '../../errors.js';
import { checkShape } from '../../tensor/shape.js';
import type { DType } from '../../tensor/dtype.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkFloat, checkSameBackend } from './checks.js';

/**
 * The kernels every backend has: what the forward pass (parallel, over a whole sequence) and the
 * recurrent step of Mamba and Mamba-2 are made of. Each kernel's argument types and its check follow
 * the interface, in its order.
 */
export interface InferenceKernels {
  /**
   * out (m, p) <- [out +] op(a) · op(b) [+ bias]; op(a) is (m, q), op(b) is (q, p).
   * `transA`: a is stored (q, m). `transB`: b is stored (p, q) — the layout of a PyTorch Linear weight,
   * so `Linear(x) = matmul(out, x, W, {transB: true, bias})`. b (and a) may be any float dtype.
   */
  matmul(out: Tensor, a: Tensor, b: Tensor, opts?: MatmulOptions): void;

  /** out (m, d) <- table[ids] ; ids (m) i32 in [0, V) (checked by the caller), table (V, d) any float. */
  embedding(out: Tensor, ids: Tensor, table: Tensor): void;

  /**
   * Fused residual add + RMSNorm over rows of width d:
   *   if x: residual <- residual + xScale · x   (in place; the residual stream)
   *   out <- residual * rsqrt(mean(residual^2) + eps) * weight
   * residual, x, out (m, d); weight (d). `xScale` (default 1) is a branch's output multiplier (Granite's
   * residual_multiplier) taken into the add instead of a separate elementwise pass over x.
   */
  addRmsnorm(out: Tensor, residual: Tensor, x: Tensor | null, weight: Tensor, eps: number, xScale?: number): void;

  /**
   * Causal depthwise conv1d along l with optional SiLU, carrying a state:
   *   window_t = [the k-1 inputs before t, x_t]    (before t = 0: state's last k-1 columns, or zeros)
   *   out[b,t,c] = act(sum_j window_t[j] * weight[c,j] + bias[c])
   * and, when a state is given, state <- the last k inputs (oldest first), as in HF's conv_states.
   * x, out (b, l, e); weight (e, k); bias (e) or null; state (b, e, k) or null.
   * With l = 1 and a state this is the recurrent step.
   */
  causalConv1d(out: Tensor, x: Tensor, weight: Tensor, bias: Tensor | null, state: Tensor | null, silu: boolean): void;

  /** The selective scan, fused (discretise, recur, contract with C, D skip, SiLU(z) gate). */
  selectiveScan(a: SelectiveScanArgs): void;

  /**
   * Mamba-2's SSD scan, fused: dt = clamp(softplus(dt + dtBias)), per head h_t = exp(dt·A)·h_{t-1} +
   * dt·x_t ⊗ B_t, y_t = h_t·C_t + D·x_t; computed in chunks of Q (any Q gives the same y up to rounding).
   */
  ssdScan(a: SsdScanArgs): void;

  /**
   * Gated RMSNorm over groups of `groupSize` columns (rows of width e = groups · groupSize):
   *   gate first (normBeforeGate false): out = rmsnorm_group(x ⊙ silu(z)) ⊙ weight
   *   norm first (normBeforeGate true):  out = rmsnorm_group(x) ⊙ weight ⊙ silu(z)
   * rmsnorm_group(v) = v · rsqrt(mean over the group of v² + eps). x, z, out (m, e); weight (e) f32;
   * z null: no gate. out must not overlap x or z.
   */
  gatedRmsnorm(out: Tensor, x: Tensor, z: Tensor | null, weight: Tensor, o: GatedRmsnormOptions): void;

  /** Elementwise `out <- f(x)`; out and x the same shape. */
  unary(op: UnaryOp, out: Tensor, x: Tensor): void;

  /** Elementwise `out <- a (op) b`; b the same shape as a, or one row (cols) broadcast over a's rows. */
  binary(op: BinaryOp, out: Tensor, a: Tensor, b: Tensor): void;

  /**
   * Optional: elementwise `out <- f(x) ⊙ y` in one pass (a gated activation: SwiGLU's silu(gate) ⊙ up),
   * the same result as `unary(op, t, x)` then `binary('mul', out, t, y)`, which callers run where it
   * is absent. x, y, out the same shape; out must not share storage with x or y.
   */
  unaryMul?(op: UnaryOp, out: Tensor, x: Tensor, y: Tensor): void;

  /** out (b) i32 <- index of the largest element of each row of x (b, V); the first one on ties. */
  argmax(out: Tensor, x: Tensor): void;
}

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor | null;
  /** Add into `out` instead of overwriting it. */
  accumulate?: boolean;
}

/**
 * Returns [m, q, p] for out (m, p) = op(a) (m, q) · op(b) (q, p). `quantized`: the block-quantised
 * formats the backend takes for b (the CPU backend q8 and q4, WebGPU q4); any other is a DTYPE_MISMATCH.
 */
export function checkMatmul(
  out: Tensor,
  a: Tensor,
  b: Tensor,
  o: MatmulOptions,
  quantized: readonly DType[] = [],
): [number, number, number] {
  const op = 'matmul';
  checkSameBackend(op, out, a, b, o.bias);
  checkFloat(op, 'a', a, true);
  checkFloat(op, 'b', b, true, quantized);
  checkFloat(op, 'out', out);
  if (b.rank !== 2) fail('SHAPE_MISMATCH', `${op}: b must be 2-D, got ${fmtShape(b.shape)}`);
  if (o.transA && a.rank !== 2) fail('SHAPE_MISMATCH', `${op}: a must be 2-D with transA, got ${fmtShape(a.shape)}`);
  const m = o.transA ? a.cols : a.rows;
  const q = o.transA ? a.rows : a.cols;
  const [bq, p] = o.transB ? [b.cols, b.rows] : [b.rows, b.cols];
  if (bq !== q) {
    fail(
      'SHAPE_MISMATCH',
      `${op}: inner sizes differ: op(a) is (${m}, ${q}) from ${fmtShape(a.shape)}, op(b) is (${bq}, ${p}) from ${fmtShape(b.shape)}${o.transB ? ' (transposed)' : ''}`,
    );
  }
  if (out.rows !== m || out.cols !== p) {
    fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected (${m}, ${p}) rows x cols`);
  }
  if (o.bias) {
    checkFloat(op, 'bias', o.bias, true);
    checkShape(op, 'bias', o.bias.shape, [p]);
  }
  return [m, q, p];
}

/** `quantized`: the block-quantised formats the backend takes for the table. */
export function checkEmbedding(
  out: Tensor,
  ids: Tensor,
  table: Tensor,
  quantized: readonly DType[] = [],
): { m: number; d: number; V: number } {
  const op = 'embedding';
  checkSameBackend(op, out, ids, table);
  if (ids.dtype !== 'i32') fail('DTYPE_MISMATCH', `${op}: ids has dtype ${ids.dtype}, expected i32`);
  checkFloat(op, 'table', table, true, quantized);
  checkFloat(op, 'out', out);
  if (table.rank !== 2) fail('SHAPE_MISMATCH', `${op}: table must be (V, d), got ${fmtShape(table.shape)}`);
  const m = ids.size;
  const [V, d] = table.shape as [number, number];
  if (out.rows !== m || out.cols !== d)
    fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected (${m}, ${d})`);
  return { m, d, V };
}

export function checkRmsnorm(
  out: Tensor,
  residual: Tensor,
  x: Tensor | null,
  weight: Tensor,
): { m: number; d: number } {
  const op = 'addRmsnorm';
  checkSameBackend(op, out, residual, x, weight);
  checkFloat(op, 'out', out);
  checkFloat(op, 'residual', residual);
  checkFloat(op, 'weight', weight, true);
  const d = residual.cols;
  const m = residual.rows;
  checkShape(op, 'weight', weight.shape, [d]);
  if (out.rows !== m || out.cols !== d)
    fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected ${fmtShape(residual.shape)}`);
  if (x) {
    checkFloat(op, 'x', x);
    if (x.rows !== m || x.cols !== d)
      fail('SHAPE_MISMATCH', `${op}: x has shape ${fmtShape(x.shape)}, expected ${fmtShape(residual.shape)}`);
  }
  return { m, d };
}

export function checkConv(
  out: Tensor,
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  state: Tensor | null,
): { b: number; l: number; e: number; k: number } {
  const op = 'causalConv1d';
  checkSameBackend(op, out, x, weight, bias, state);
  if (x.rank !== 3) fail('SHAPE_MISMATCH', `${op}: x must be (b, l, e), got ${fmtShape(x.shape)}`);
  const [b, l, e] = x.shape as [number, number, number];
  if (weight.rank !== 2) fail('SHAPE_MISMATCH', `${op}: weight must be (e, k), got ${fmtShape(weight.shape)}`);
  const k = weight.cols;
  checkFloat(op, 'x', x);
  checkFloat(op, 'out', out);
  checkFloat(op, 'weight', weight);
  checkShape(op, 'out', out.shape, [b, l, e]);
  checkShape(op, 'weight', weight.shape, [e, k]);
  if (bias) {
    checkFloat(op, 'bias', bias);
    checkShape(op, 'bias', bias.shape, [e]);
  }
  if (state) {
    checkFloat(op, 'state', state);
    checkShape(op, 'state', state.shape, [b, e, k]);
  }
  return { b, l, e, k };
}

/**
 * Arguments of the selective scan (Mamba-1's S6), REFERENCE.md §1:
 *   dt_t  = softplus(delta_t + deltaBias)           if deltaSoftplus, else delta_t + deltaBias
 *   h_t   = exp(dt_t * A) * h_{t-1} + (dt_t * B_t) * u_t      h (b, e, n)
 *   y_t   = sum_n h_t * C_t + D * u_t
 *   y_t   = y_t * silu(z_t)                          if z
 * u, delta, z, y (b, l, e); B, C (b, l, n) (views into x_proj's output are fine); A (e, n);
 * D, deltaBias (e); h0 (b, e, n) initial state or null for zeros; hOut (b, e, n) receives h_l, or null.
 * h0 and hOut may be the same tensor (the recurrent step: l = 1).
 */
export interface SelectiveScanArgs {
  y: Tensor;
  u: Tensor;
  delta: Tensor;
  A: Tensor;
  B: Tensor;
  C: Tensor;
  D: Tensor | null;
  z: Tensor | null;
  deltaBias: Tensor | null;
  deltaSoftplus: boolean;
  h0: Tensor | null;
  hOut: Tensor | null;
}

export function checkScan(s: SelectiveScanArgs): { b: number; l: number; e: number; n: number } {
  const op = 'selectiveScan';
  checkSameBackend(op, s.y, s.u, s.delta, s.A, s.B, s.C, s.D, s.z, s.deltaBias, s.h0, s.hOut);
  if (s.u.rank !== 3) fail('SHAPE_MISMATCH', `${op}: u must be (b, l, e), got ${fmtShape(s.u.shape)}`);
  const [b, l, e] = s.u.shape as [number, number, number];
  if (s.A.rank !== 2) fail('SHAPE_MISMATCH', `${op}: A must be (e, n), got ${fmtShape(s.A.shape)}`);
  const n = s.A.cols;
  for (const [what, t] of [
    ['u', s.u],
    ['delta', s.delta],
    ['A', s.A],
    ['B', s.B],
    ['C', s.C],
    ['y', s.y],
  ] as const)
    checkFloat(op, what, t);
  checkShape(op, 'delta', s.delta.shape, [b, l, e]);
  checkShape(op, 'y', s.y.shape, [b, l, e]);
  checkShape(op, 'A', s.A.shape, [e, n]);
  checkShape(op, 'B', s.B.shape, [b, l, n]);
  checkShape(op, 'C', s.C.shape, [b, l, n]);
  if (s.z) {
    checkFloat(op, 'z', s.z);
    checkShape(op, 'z', s.z.shape, [b, l, e]);
  }
  if (s.D) {
    checkFloat(op, 'D', s.D);
    checkShape(op, 'D', s.D.shape, [e]);
  }
  if (s.deltaBias) {
    checkFloat(op, 'deltaBias', s.deltaBias);
    checkShape(op, 'deltaBias', s.deltaBias.shape, [e]);
  }
  if (s.h0) {
    checkFloat(op, 'h0', s.h0);
    checkShape(op, 'h0', s.h0.shape, [b, e, n]);
  }
  if (s.hOut) {
    checkFloat(op, 'hOut', s.hOut);
    checkShape(op, 'hOut', s.hOut.shape, [b, e, n]);
  }
  return { b, l, e, n };
}

/**
 * Arguments of Mamba-2's SSD scan (the "state space dual" form; Dao & Gu 2024, REFERENCE.md §2), per
 * batch row and head i (group gi = floor(i / (h/g)), whose B and C it shares):
 *   dt_t = clamp(softplus(dt_t + dtBias_i), dtLimit)  (softplus only if dtSoftplus; clamp: min then max)
 *   h_t  = exp(dt_t · A_i) · h_{t-1} + dt_t · x_t ⊗ B_t        h (p, n), x_t (p) = x[t, i·p : (i+1)·p]
 *   y_t  = h_t · C_t + D_i · x_t                                 y_t (p)
 * x, y (b, l, h·p); dt (b, l, h) before bias; B, C (b, l, g·n); A, D, dtBias (h); h0, hOut (b, h, p, n).
 * All inputs may be views (column windows of in_proj's or the conv's output). h0 null: zeros; hOut
 * receives h_l; h0 and hOut may be the same tensor (the recurrent step, l = 1). `chunkSize` is the
 * block length of the chunked algorithm; it changes rounding only, never the result.
 */
export interface SsdScanArgs {
  y: Tensor;
  x: Tensor;
  dt: Tensor;
  A: Tensor;
  B: Tensor;
  C: Tensor;
  D: Tensor | null;
  dtBias: Tensor | null;
  dtSoftplus: boolean;
  /** [min, max] for dt after softplus; [-Infinity, Infinity] leaves it as is. */
  dtLimit: readonly [number, number];
  /** g: groups of heads sharing B and C (h divisible by g). */
  nGroups: number;
  /** Q: chunk length (>= 1). */
  chunkSize: number;
  h0: Tensor | null;
  hOut: Tensor | null;
}

/** Sizes of an SSD scan: b batch, l length, h heads, p head_dim, g groups, n d_state. */
export interface SsdDims {
  b: number;
  l: number;
  h: number;
  p: number;
  g: number;
  n: number;
}

export function checkSsdScan(s: SsdScanArgs): SsdDims {
  const op = 'ssdScan';
  checkSameBackend(op, s.y, s.x, s.dt, s.A, s.B, s.C, s.D, s.dtBias, s.h0, s.hOut);
  if (s.x.rank !== 3) fail('SHAPE_MISMATCH', `${op}: x must be (b, l, h * head_dim), got ${fmtShape(s.x.shape)}`);
  if (s.A.rank !== 1) fail('SHAPE_MISMATCH', `${op}: A must be (h), one value per head, got ${fmtShape(s.A.shape)}`);
  const [b, l, e] = s.x.shape as [number, number, number];
  const h = s.A.size;
  if (h === 0 || e % h !== 0)
    fail('SHAPE_MISMATCH', `${op}: x has ${e} columns, not a multiple of the ${h} heads of A`);
  const g = s.nGroups;
  if (!Number.isInteger(g) || g < 1 || h % g !== 0)
    fail('BAD_ARGUMENT', `${op}: nGroups must be a positive divisor of the ${h} heads, got ${g}`);
  if (s.B.rank !== 3 || s.B.cols % g !== 0)
    fail('SHAPE_MISMATCH', `${op}: B must be (b, l, nGroups * d_state) with nGroups ${g}, got ${fmtShape(s.B.shape)}`);
  const p = e / h,
    n = s.B.cols / g;
  if (!Number.isInteger(s.chunkSize) || s.chunkSize < 1)
    fail('BAD_ARGUMENT', `${op}: chunkSize must be a positive integer, got ${s.chunkSize}`);
  const [lo, hi] = s.dtLimit;
  if (!(lo <= hi)) fail('BAD_ARGUMENT', `${op}: dtLimit must be [min, max] with min <= max, got [${lo}, ${hi}]`);
  for (const [what, t] of [
    ['x', s.x],
    ['dt', s.dt],
    ['A', s.A],
    ['B', s.B],
    ['C', s.C],
    ['y', s.y],
  ] as const)
    checkFloat(op, what, t);
  checkShape(op, 'y', s.y.shape, [b, l, e]);
  checkShape(op, 'dt', s.dt.shape, [b, l, h]);
  checkShape(op, 'B', s.B.shape, [b, l, g * n]);
  checkShape(op, 'C', s.C.shape, [b, l, g * n]);
  if (s.D) {
    checkFloat(op, 'D', s.D);
    checkShape(op, 'D', s.D.shape, [h]);
  }
  if (s.dtBias) {
    checkFloat(op, 'dtBias', s.dtBias);
    checkShape(op, 'dtBias', s.dtBias.shape, [h]);
  }
  if (s.h0) {
    checkFloat(op, 'h0', s.h0);
    checkShape(op, 'h0', s.h0.shape, [b, h, p, n]);
  }
  if (s.hOut) {
    checkFloat(op, 'hOut', s.hOut);
    checkShape(op, 'hOut', s.hOut.shape, [b, h, p, n]);
  }
  return { b, l, h, p, g, n };
}

export interface GatedRmsnormOptions {
  /** Columns normalised together: a divisor of the row width (the row width itself: one group). */
  groupSize: number;
  eps: number;
  /** true: normalise, then gate; false: gate, then normalise (transformers' Mamba-2 always). */
  normBeforeGate: boolean;
}

export function checkGatedRmsnorm(
  out: Tensor,
  x: Tensor,
  z: Tensor | null,
  weight: Tensor,
  o: GatedRmsnormOptions,
): { m: number; e: number } {
  const op = 'gatedRmsnorm';
  checkSameBackend(op, out, x, z, weight);
  checkFloat(op, 'out', out);
  checkFloat(op, 'x', x);
  checkFloat(op, 'weight', weight);
  const m = x.rows,
    e = x.cols;
  checkShape(op, 'weight', weight.shape, [e]);
  if (out.rows !== m || out.cols !== e)
    fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected ${fmtShape(x.shape)}`);
  if (z) {
    checkFloat(op, 'z', z);
    if (z.rows !== m || z.cols !== e)
      fail('SHAPE_MISMATCH', `${op}: z has shape ${fmtShape(z.shape)}, expected ${fmtShape(x.shape)}`);
  }
  if (!Number.isInteger(o.groupSize) || o.groupSize < 1 || e % o.groupSize !== 0) {
    fail('BAD_ARGUMENT', `${op}: groupSize must be a positive divisor of the row width ${e}, got ${o.groupSize}`);
  }
  if (!(o.eps >= 0)) fail('BAD_ARGUMENT', `${op}: eps must be >= 0, got ${o.eps}`);
  return { m, e };
}

export type UnaryOp =
  'silu' | 'softplus' | 'exp' | 'neg' | 'negexp' | 'relu' | 'gelu' | 'sigmoid' | 'tanh' | 'square' | 'sqrt' | 'log';
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';

export function checkElementwise(op: string, out: Tensor, a: Tensor, b?: Tensor): void {
  checkSameBackend(op, out, a, b);
  checkFloat(op, 'out', out);
  checkFloat(op, 'x', a);
  if (out.rows !== a.rows || out.cols !== a.cols)
    fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected ${fmtShape(a.shape)}`);
  if (b) {
    checkFloat(op, 'b', b);
    const rowBroadcast = b.size === a.cols;
    if (!(rowBroadcast || (b.rows === a.rows && b.cols === a.cols))) {
      fail('SHAPE_MISMATCH', `${op}: b has shape ${fmtShape(b.shape)}, expected ${fmtShape(a.shape)} or (${a.cols})`);
    }
  }
}

export function checkUnaryMul(op: UnaryOp, out: Tensor, x: Tensor, y: Tensor): void {
  checkElementwise(`unaryMul(${op})`, out, x, y);
  if (y.rows !== x.rows || y.cols !== x.cols)
    fail('SHAPE_MISMATCH', `unaryMul(${op}): y has shape ${fmtShape(y.shape)}, expected ${fmtShape(x.shape)}`);
}

export function checkArgmax(out: Tensor, x: Tensor): void {
  checkSameBackend('argmax', out, x);
  checkFloat('argmax', 'x', x);
  if (out.dtype !== 'i32') fail('DTYPE_MISMATCH', `argmax: out has dtype ${out.dtype}, expected i32`);
  if (out.size !== x.rows)
    fail('SHAPE_MISMATCH', `argmax: out has ${out.size} elements, expected one per row of x (${x.rows})`);
}
