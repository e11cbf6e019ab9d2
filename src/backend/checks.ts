import { fail, fmtShape } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type {
  AdamWStepOptions, CausalConv1dBackwardArgs, GatedRmsnormOptions, MatmulOptions, SampleArgs, SelectiveScanArgs, SelectiveScanBackwardArgs, SsdScanArgs,
} from './backend.js';
import { checkSamplingParams } from '../generate/sampling.js';
import { checkShape } from '../tensor/shape.js';

/**
 * Shape and dtype checks shared by every backend: run before each kernel so a wrong call fails with
 * the op's name and the expected and actual shapes, never with wrong numbers or a GPU fault.
 */

export function checkFloat(op: string, what: string, t: Tensor, allowHalf = false, allowQ8 = false): void {
  t.assertLive();
  const ok = t.dtype === 'f32' || (allowHalf && (t.dtype === 'f16' || t.dtype === 'bf16')) || (allowQ8 && t.dtype === 'q8');
  if (!ok) fail('DTYPE_MISMATCH', `${op}: ${what} has dtype ${t.dtype}, expected f32${allowHalf ? (allowQ8 ? ', f16, bf16 or q8' : ', f16 or bf16') : ''}`);
}

export function checkSameBackend(op: string, ...ts: (Tensor | null | undefined)[]): void {
  let first: Tensor | undefined;
  for (const t of ts) {
    if (!t) continue;
    t.assertLive();
    if (!first) first = t;
    else if (t.backend !== first.backend) {
      fail('BACKEND_MISMATCH', `${op}: tensors on ${first.backend.name} and ${t.backend.name} backends meet`);
    }
  }
}

/**
 * Returns [m, q, p] for out (m, p) = op(a) (m, q) · op(b) (q, p). `q8`: the backend takes q8 weights
 * for b (the CPU backend); elsewhere a q8 b is a DTYPE_MISMATCH.
 */
export function checkMatmul(out: Tensor, a: Tensor, b: Tensor, o: MatmulOptions, q8 = false): [number, number, number] {
  const op = 'matmul';
  checkSameBackend(op, out, a, b, o.bias);
  checkFloat(op, 'a', a, true);
  checkFloat(op, 'b', b, true, q8);
  checkFloat(op, 'out', out);
  if (b.rank !== 2) fail('SHAPE_MISMATCH', `${op}: b must be 2-D, got ${fmtShape(b.shape)}`);
  if (o.transA && a.rank !== 2) fail('SHAPE_MISMATCH', `${op}: a must be 2-D with transA, got ${fmtShape(a.shape)}`);
  const m = o.transA ? a.cols : a.rows;
  const q = o.transA ? a.rows : a.cols;
  const [bq, p] = o.transB ? [b.cols, b.rows] : [b.rows, b.cols];
  if (bq !== q) {
    fail('SHAPE_MISMATCH', `${op}: inner sizes differ: op(a) is (${m}, ${q}) from ${fmtShape(a.shape)}, op(b) is (${bq}, ${p}) from ${fmtShape(b.shape)}${o.transB ? ' (transposed)' : ''}`);
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

export function checkScan(s: SelectiveScanArgs): { b: number; l: number; e: number; n: number } {
  const op = 'selectiveScan';
  checkSameBackend(op, s.y, s.u, s.delta, s.A, s.B, s.C, s.D, s.z, s.deltaBias, s.h0, s.hOut);
  if (s.u.rank !== 3) fail('SHAPE_MISMATCH', `${op}: u must be (b, l, e), got ${fmtShape(s.u.shape)}`);
  const [b, l, e] = s.u.shape as [number, number, number];
  if (s.A.rank !== 2) fail('SHAPE_MISMATCH', `${op}: A must be (e, n), got ${fmtShape(s.A.shape)}`);
  const n = s.A.cols;
  for (const [what, t] of [['u', s.u], ['delta', s.delta], ['A', s.A], ['B', s.B], ['C', s.C], ['y', s.y]] as const) checkFloat(op, what, t);
  checkShape(op, 'delta', s.delta.shape, [b, l, e]);
  checkShape(op, 'y', s.y.shape, [b, l, e]);
  checkShape(op, 'A', s.A.shape, [e, n]);
  checkShape(op, 'B', s.B.shape, [b, l, n]);
  checkShape(op, 'C', s.C.shape, [b, l, n]);
  if (s.z) { checkFloat(op, 'z', s.z); checkShape(op, 'z', s.z.shape, [b, l, e]); }
  if (s.D) { checkFloat(op, 'D', s.D); checkShape(op, 'D', s.D.shape, [e]); }
  if (s.deltaBias) { checkFloat(op, 'deltaBias', s.deltaBias); checkShape(op, 'deltaBias', s.deltaBias.shape, [e]); }
  if (s.h0) { checkFloat(op, 'h0', s.h0); checkShape(op, 'h0', s.h0.shape, [b, e, n]); }
  if (s.hOut) { checkFloat(op, 'hOut', s.hOut); checkShape(op, 'hOut', s.hOut.shape, [b, e, n]); }
  return { b, l, e, n };
}

export function checkConv(out: Tensor, x: Tensor, weight: Tensor, bias: Tensor | null, state: Tensor | null): { b: number; l: number; e: number; k: number } {
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
  if (bias) { checkFloat(op, 'bias', bias); checkShape(op, 'bias', bias.shape, [e]); }
  if (state) { checkFloat(op, 'state', state); checkShape(op, 'state', state.shape, [b, e, k]); }
  return { b, l, e, k };
}

export function checkRmsnorm(out: Tensor, residual: Tensor, x: Tensor | null, weight: Tensor): { m: number; d: number } {
  const op = 'addRmsnorm';
  checkSameBackend(op, out, residual, x, weight);
  checkFloat(op, 'out', out);
  checkFloat(op, 'residual', residual);
  checkFloat(op, 'weight', weight, true);
  const d = residual.cols;
  const m = residual.rows;
  checkShape(op, 'weight', weight.shape, [d]);
  if (out.rows !== m || out.cols !== d) fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected ${fmtShape(residual.shape)}`);
  if (x) {
    checkFloat(op, 'x', x);
    if (x.rows !== m || x.cols !== d) fail('SHAPE_MISMATCH', `${op}: x has shape ${fmtShape(x.shape)}, expected ${fmtShape(residual.shape)}`);
  }
  return { m, d };
}

/** `q8`: the backend takes a q8 table (the CPU backend). */
export function checkEmbedding(out: Tensor, ids: Tensor, table: Tensor, q8 = false): { m: number; d: number; V: number } {
  const op = 'embedding';
  checkSameBackend(op, out, ids, table);
  if (ids.dtype !== 'i32') fail('DTYPE_MISMATCH', `${op}: ids has dtype ${ids.dtype}, expected i32`);
  checkFloat(op, 'table', table, true, q8);
  checkFloat(op, 'out', out);
  if (table.rank !== 2) fail('SHAPE_MISMATCH', `${op}: table must be (V, d), got ${fmtShape(table.shape)}`);
  const m = ids.size;
  const [V, d] = table.shape as [number, number];
  if (out.rows !== m || out.cols !== d) fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected (${m}, ${d})`);
  return { m, d, V };
}

export function checkElementwise(op: string, out: Tensor, a: Tensor, b?: Tensor): void {
  checkSameBackend(op, out, a, b);
  checkFloat(op, 'out', out);
  checkFloat(op, 'x', a);
  if (out.rows !== a.rows || out.cols !== a.cols) fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected ${fmtShape(a.shape)}`);
  if (b) {
    checkFloat(op, 'b', b);
    const rowBroadcast = b.size === a.cols;
    if (!(rowBroadcast || (b.rows === a.rows && b.cols === a.cols))) {
      fail('SHAPE_MISMATCH', `${op}: b has shape ${fmtShape(b.shape)}, expected ${fmtShape(a.shape)} or (${a.cols})`);
    }
  }
}

export function checkArgmax(out: Tensor, x: Tensor): void {
  checkSameBackend('argmax', out, x);
  checkFloat('argmax', 'x', x);
  if (out.dtype !== 'i32') fail('DTYPE_MISMATCH', `argmax: out has dtype ${out.dtype}, expected i32`);
  if (out.size !== x.rows) fail('SHAPE_MISMATCH', `argmax: out has ${out.size} elements, expected one per row of x (${x.rows})`);
}

/** Sizes of an SSD scan: b batch, l length, h heads, p head_dim, g groups, n d_state. */
export interface SsdDims { b: number; l: number; h: number; p: number; g: number; n: number }

export function checkSsdScan(s: SsdScanArgs): SsdDims {
  const op = 'ssdScan';
  checkSameBackend(op, s.y, s.x, s.dt, s.A, s.B, s.C, s.D, s.dtBias, s.h0, s.hOut);
  if (s.x.rank !== 3) fail('SHAPE_MISMATCH', `${op}: x must be (b, l, h * head_dim), got ${fmtShape(s.x.shape)}`);
  if (s.A.rank !== 1) fail('SHAPE_MISMATCH', `${op}: A must be (h), one value per head, got ${fmtShape(s.A.shape)}`);
  const [b, l, e] = s.x.shape as [number, number, number];
  const h = s.A.size;
  if (h === 0 || e % h !== 0) fail('SHAPE_MISMATCH', `${op}: x has ${e} columns, not a multiple of the ${h} heads of A`);
  const g = s.nGroups;
  if (!Number.isInteger(g) || g < 1 || h % g !== 0) fail('BAD_ARGUMENT', `${op}: nGroups must be a positive divisor of the ${h} heads, got ${g}`);
  if (s.B.rank !== 3 || s.B.cols % g !== 0) fail('SHAPE_MISMATCH', `${op}: B must be (b, l, nGroups * d_state) with nGroups ${g}, got ${fmtShape(s.B.shape)}`);
  const p = e / h, n = s.B.cols / g;
  if (!Number.isInteger(s.chunkSize) || s.chunkSize < 1) fail('BAD_ARGUMENT', `${op}: chunkSize must be a positive integer, got ${s.chunkSize}`);
  const [lo, hi] = s.dtLimit;
  if (!(lo <= hi)) fail('BAD_ARGUMENT', `${op}: dtLimit must be [min, max] with min <= max, got [${lo}, ${hi}]`);
  for (const [what, t] of [['x', s.x], ['dt', s.dt], ['A', s.A], ['B', s.B], ['C', s.C], ['y', s.y]] as const) checkFloat(op, what, t);
  checkShape(op, 'y', s.y.shape, [b, l, e]);
  checkShape(op, 'dt', s.dt.shape, [b, l, h]);
  checkShape(op, 'B', s.B.shape, [b, l, g * n]);
  checkShape(op, 'C', s.C.shape, [b, l, g * n]);
  if (s.D) { checkFloat(op, 'D', s.D); checkShape(op, 'D', s.D.shape, [h]); }
  if (s.dtBias) { checkFloat(op, 'dtBias', s.dtBias); checkShape(op, 'dtBias', s.dtBias.shape, [h]); }
  if (s.h0) { checkFloat(op, 'h0', s.h0); checkShape(op, 'h0', s.h0.shape, [b, h, p, n]); }
  if (s.hOut) { checkFloat(op, 'hOut', s.hOut); checkShape(op, 'hOut', s.hOut.shape, [b, h, p, n]); }
  return { b, l, h, p, g, n };
}

export function checkGatedRmsnorm(out: Tensor, x: Tensor, z: Tensor | null, weight: Tensor, o: GatedRmsnormOptions): { m: number; e: number } {
  const op = 'gatedRmsnorm';
  checkSameBackend(op, out, x, z, weight);
  checkFloat(op, 'out', out);
  checkFloat(op, 'x', x);
  checkFloat(op, 'weight', weight);
  const m = x.rows, e = x.cols;
  checkShape(op, 'weight', weight.shape, [e]);
  if (out.rows !== m || out.cols !== e) fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected ${fmtShape(x.shape)}`);
  if (z) {
    checkFloat(op, 'z', z);
    if (z.rows !== m || z.cols !== e) fail('SHAPE_MISMATCH', `${op}: z has shape ${fmtShape(z.shape)}, expected ${fmtShape(x.shape)}`);
  }
  if (!Number.isInteger(o.groupSize) || o.groupSize < 1 || e % o.groupSize !== 0) {
    fail('BAD_ARGUMENT', `${op}: groupSize must be a positive divisor of the row width ${e}, got ${o.groupSize}`);
  }
  if (!(o.eps >= 0)) fail('BAD_ARGUMENT', `${op}: eps must be >= 0, got ${o.eps}`);
  return { m, e };
}

export function checkSample(a: SampleArgs): { b: number; V: number } {
  const op = 'sample';
  checkSameBackend(op, a.out, a.logits, a.seen, a.suppress, a.stepCounter);
  checkFloat(op, 'logits', a.logits);
  if (a.logits.rank !== 2) fail('SHAPE_MISMATCH', `${op}: logits must be (b, V), got ${fmtShape(a.logits.shape)}`);
  const [b, V] = a.logits.shape as [number, number];
  if (V === 0) fail('SHAPE_MISMATCH', `${op}: logits have no columns (V = 0)`);
  if (a.out.dtype !== 'i32') fail('DTYPE_MISMATCH', `${op}: out has dtype ${a.out.dtype}, expected i32`);
  if (a.out.size !== b) fail('SHAPE_MISMATCH', `${op}: out has ${a.out.size} elements, expected one per row of logits (${b})`);
  if (a.seen) {
    if (a.seen.dtype !== 'i32') fail('DTYPE_MISMATCH', `${op}: seen has dtype ${a.seen.dtype}, expected i32`);
    if (a.seen.rows !== b || a.seen.cols !== V) fail('SHAPE_MISMATCH', `${op}: seen has shape ${fmtShape(a.seen.shape)}, expected (${b}, ${V})`);
  }
  if (a.suppress) {
    if (a.suppress.dtype !== 'i32') fail('DTYPE_MISMATCH', `${op}: suppress has dtype ${a.suppress.dtype}, expected i32`);
    checkShape(op, 'suppress', a.suppress.shape, [V]);
  }
  if (a.stepCounter && (a.stepCounter.dtype !== 'i32' || a.stepCounter.size !== 2)) fail('SHAPE_MISMATCH', `${op}: stepCounter must be a (2) i32 tensor, got ${a.stepCounter.toString()}`);
  if (!Number.isInteger(a.step) || a.step < 0) fail('BAD_ARGUMENT', `${op}: step must be an integer >= 0, got ${a.step}`);
  checkSamplingParams(a.params);
  return { b, V };
}

// ---- training kernels -----------------------------------------------------------------------------

function checkSameRowsCols(op: string, what: string, t: Tensor, rows: number, cols: number, like: string): void {
  if (t.rows !== rows || t.cols !== cols) fail('SHAPE_MISMATCH', `${op}: ${what} has shape ${fmtShape(t.shape)}, expected the shape of ${like} (${rows} rows x ${cols})`);
}

export function checkReduceRows(out: Tensor, x: Tensor): { m: number; p: number } {
  const op = 'reduceRows';
  checkSameBackend(op, out, x);
  checkFloat(op, 'x', x);
  checkFloat(op, 'out', out);
  if (out.size !== x.cols || (out.rank > 1 && !out.isContiguous)) fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected ${x.cols} contiguous elements (the columns of x ${fmtShape(x.shape)})`);
  return { m: x.rows, p: x.cols };
}

export function checkUnaryBackward(op: string, dx: Tensor, g: Tensor, x: Tensor, y: Tensor): void {
  const name = `unaryBackward(${op})`;
  checkSameBackend(name, dx, g, x, y);
  for (const [what, t] of [['dx', dx], ['g', g], ['x', x], ['y', y]] as const) {
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
  const m = ids.size, d = dTable.cols;
  if (!ids.isContiguous && ids.rank > 1) fail('SHAPE_MISMATCH', `${op}: ids must be contiguous`);
  if (g.rows !== m || g.cols !== d) fail('SHAPE_MISMATCH', `${op}: g has shape ${fmtShape(g.shape)}, expected (${m}, ${d}): one row of width d per id`);
  return { m, d };
}

export function checkRmsnormBackward(dx: Tensor, dWeight: Tensor, g: Tensor, x: Tensor, weight: Tensor): { m: number; d: number } {
  const op = 'rmsnormBackward';
  checkSameBackend(op, dx, dWeight, g, x, weight);
  const m = x.rows, d = x.cols;
  for (const [what, t] of [['dx', dx], ['g', g], ['x', x]] as const) { checkFloat(op, what, t); checkSameRowsCols(op, what, t, m, d, 'x'); }
  checkFloat(op, 'weight', weight);
  checkFloat(op, 'dWeight', dWeight);
  checkShape(op, 'weight', weight.shape, [d]);
  checkShape(op, 'dWeight', dWeight.shape, [d]);
  return { m, d };
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
  if (a.dBias) { checkFloat(op, 'dBias', a.dBias); checkShape(op, 'dBias', a.dBias.shape, [dims.e]); }
  return dims;
}

export function checkScanBackward(s: SelectiveScanBackwardArgs): { b: number; l: number; e: number; n: number } {
  const op = 'selectiveScanBackward';
  const dims = checkScan({ ...s, y: s.dy, hOut: null });
  const { b, l, e, n } = dims;
  checkSameBackend(op, s.dy, s.du, s.dDelta, s.dA, s.dB, s.dC, s.dD, s.dz, s.dDeltaBias, s.dh0);
  const want: [string, Tensor | null, Tensor | null, number[]][] = [
    ['du', s.du, s.u, [b, l, e]], ['dDelta', s.dDelta, s.delta, [b, l, e]], ['dA', s.dA, s.A, [e, n]],
    ['dB', s.dB, s.B, [b, l, n]], ['dC', s.dC, s.C, [b, l, n]], ['dD', s.dD, s.D, [e]], ['dz', s.dz, s.z, [b, l, e]],
    ['dDeltaBias', s.dDeltaBias, s.deltaBias, [e]],
  ];
  for (const [what, grad, input, shape] of want) {
    if (!!grad !== !!input) fail('BAD_ARGUMENT', `${op}: ${what} must be given exactly when ${what.slice(1)} is`);
    if (grad) { checkFloat(op, what, grad); checkShape(op, what, grad.shape, shape); }
  }
  if (s.dh0) {
    if (!s.h0) fail('BAD_ARGUMENT', `${op}: dh0 needs h0`);
    checkFloat(op, 'dh0', s.dh0);
    checkShape(op, 'dh0', s.dh0.shape, [b, e, n]);
  }
  if (s.chunk !== undefined && !(Number.isInteger(s.chunk) && s.chunk > 0)) fail('BAD_ARGUMENT', `${op}: chunk must be a positive integer, got ${s.chunk}`);
  return dims;
}

export function checkCrossEntropy(op: string, out: Tensor, logits: Tensor, targets: Tensor, outShape: 'scalar' | 'logits'): { m: number; V: number } {
  checkSameBackend(op, out, logits, targets);
  checkFloat(op, 'logits', logits);
  checkFloat(op, 'out', out);
  if (targets.dtype !== 'i32') fail('DTYPE_MISMATCH', `${op}: targets has dtype ${targets.dtype}, expected i32`);
  const m = logits.rows, V = logits.cols;
  if (targets.size !== m || (targets.rank > 1 && !targets.isContiguous)) fail('SHAPE_MISMATCH', `${op}: targets has shape ${fmtShape(targets.shape)}, expected ${m} contiguous ids (one per row of logits ${fmtShape(logits.shape)})`);
  if (outShape === 'scalar' && out.size !== 1) fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected one element`);
  if (outShape === 'logits') checkSameRowsCols(op, 'dLogits', out, m, V, 'logits');
  return { m, V };
}

export function checkAdamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWStepOptions): void {
  const op = 'adamwStep';
  checkSameBackend(op, param, grad, m, v);
  for (const [what, t] of [['param', param], ['grad', grad], ['m', m], ['v', v]] as const) {
    checkFloat(op, what, t);
    checkShape(op, what, t.shape, param.shape);
  }
  if (!(Number.isInteger(o.step) && o.step >= 1)) fail('BAD_ARGUMENT', `${op}: step must be an integer >= 1, got ${o.step}`);
  for (const k of ['lr', 'beta1', 'beta2', 'eps', 'weightDecay'] as const) {
    if (!Number.isFinite(o[k]) || o[k] < 0) fail('BAD_ARGUMENT', `${op}: ${k} must be a finite number >= 0, got ${o[k]}`);
  }
  if (o.beta1 >= 1 || o.beta2 >= 1) fail('BAD_ARGUMENT', `${op}: beta1 and beta2 must be below 1, got ${o.beta1}, ${o.beta2}`);
}
