import { fail, fmtShape } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type {
  AdamWStepOptions, AttentionArgs, AttentionBackwardArgs, CausalConv1dBackwardArgs, DiagonalSsmScanArgs, GatedRmsnormOptions, MatmulOptions,
  RotaryOptions, SampleArgs, SelectiveScanArgs, SelectiveScanBackwardArgs, SsdScanArgs, SsmConvKernelArgs, SsmConvKernelBackwardArgs, SsmParams,
} from './backend.js';
import { checkSamplingParams } from './sampling.js';
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

/** copy: same rows and columns; ids copy only to ids; floats convert to f32 or copy to their own dtype. */
export function checkCopy(dst: Tensor, src: Tensor): void {
  checkSameBackend('copy', dst, src);
  if (dst.rows !== src.rows || dst.cols !== src.cols) fail('SHAPE_MISMATCH', `copy: ${dst.toString()} <- ${src.toString()}`);
  if (src.dtype === 'i32' || dst.dtype === 'i32') {
    if (src.dtype !== dst.dtype) fail('DTYPE_MISMATCH', `copy: ${src.dtype} -> ${dst.dtype}`);
  } else if (dst.dtype !== 'f32' && dst.dtype !== src.dtype) fail('DTYPE_MISMATCH', `copy: ${src.dtype} -> ${dst.dtype}`);
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

// ---- other sequence mixers (S4D, H3, Hyena, attention) ---------------------------------------------

function check3(op: string, what: string, t: Tensor): [number, number, number] {
  checkFloat(op, what, t);
  if (t.rank !== 3) fail('SHAPE_MISMATCH', `${op}: ${what} must be (b, l, channels), got ${fmtShape(t.shape)}`);
  return t.shape as [number, number, number];
}

export function checkFftConv(op: string, y: Tensor, u: Tensor, K: Tensor): { b: number; l: number; e: number; lk: number } {
  checkSameBackend(op, y, u, K);
  const [b, l, e] = check3(op, 'u', u);
  checkFloat(op, 'y', y);
  checkShape(op, 'y', y.shape, [b, l, e]);
  checkFloat(op, 'K', K);
  if (K.rank !== 2 || K.cols !== e || K.rows < l) fail('SHAPE_MISMATCH', `${op}: K has shape ${fmtShape(K.shape)}, expected (lk, ${e}) with lk >= the sequence length ${l}: one filter of at least l taps per channel`);
  return { b, l, e, lk: K.rows };
}

export function checkFftConvBackward(du: Tensor, dK: Tensor, g: Tensor, u: Tensor, K: Tensor): { b: number; l: number; e: number; lk: number } {
  const op = 'fftConvBackward';
  const dims = checkFftConv(op, g, u, K);
  checkSameBackend(op, du, dK);
  checkFloat(op, 'du', du);
  checkFloat(op, 'dK', dK);
  checkShape(op, 'du', du.shape, u.shape);
  checkShape(op, 'dK', dK.shape, K.shape);
  return dims;
}

function checkSsmParams(op: string, p: SsmParams): { e: number; N: number } {
  checkSameBackend(op, p.dt, p.ARe, p.AIm, p.CRe, p.CIm);
  checkFloat(op, 'dt', p.dt);
  if (p.ARe.rank !== 2) fail('SHAPE_MISMATCH', `${op}: ARe must be (e, N), got ${fmtShape(p.ARe.shape)}`);
  const [e, N] = p.ARe.shape as [number, number];
  checkShape(op, 'dt', p.dt.shape, [e]);
  for (const [what, t] of [['ARe', p.ARe], ['AIm', p.AIm], ['CRe', p.CRe], ['CIm', p.CIm]] as const) { checkFloat(op, what, t); checkShape(op, what, t.shape, [e, N]); }
  if (!(p.scale === 1 || p.scale === 2)) fail('BAD_ARGUMENT', `${op}: scale must be 1 (real modes) or 2 (conjugate pairs), got ${p.scale}`);
  return { e, N };
}

export function checkSsmConvKernel(a: SsmConvKernelArgs): { L: number; e: number; N: number } {
  const op = 'ssmConvKernel';
  const { e, N } = checkSsmParams(op, a);
  checkSameBackend(op, a.K, a.dt);
  checkFloat(op, 'K', a.K);
  if (a.K.rank !== 2 || a.K.cols !== e) fail('SHAPE_MISMATCH', `${op}: K has shape ${fmtShape(a.K.shape)}, expected (L, ${e})`);
  return { L: a.K.rows, e, N };
}

export function checkSsmConvKernelBackward(a: SsmConvKernelBackwardArgs): { L: number; e: number; N: number } {
  const op = 'ssmConvKernelBackward';
  const dims = checkSsmConvKernel({ ...a, K: a.g });
  checkSameBackend(op, a.g, a.dDt, a.dARe, a.dAIm, a.dCRe, a.dCIm);
  for (const [what, t, like] of [['dDt', a.dDt, a.dt], ['dARe', a.dARe, a.ARe], ['dAIm', a.dAIm, a.AIm], ['dCRe', a.dCRe, a.CRe], ['dCIm', a.dCIm, a.CIm]] as const) {
    checkFloat(op, what, t);
    checkShape(op, what, t.shape, like.shape);
  }
  return dims;
}

export function checkDiagonalSsmScan(a: DiagonalSsmScanArgs): { b: number; l: number; e: number; N: number } {
  const op = 'diagonalSsmScan';
  const { e, N } = checkSsmParams(op, a);
  checkSameBackend(op, a.y, a.u, a.D, a.state, a.dt);
  const [b, l] = check3(op, 'u', a.u);
  checkShape(op, 'u', a.u.shape, [b, l, e]);
  checkFloat(op, 'y', a.y);
  checkShape(op, 'y', a.y.shape, [b, l, e]);
  if (a.D) { checkFloat(op, 'D', a.D); checkShape(op, 'D', a.D.shape, [e]); }
  if (a.state) { checkFloat(op, 'state', a.state); checkShape(op, 'state', a.state.shape, [b, e, 2 * N]); }
  return { b, l, e, N };
}

export function checkAttention(op: string, a: AttentionArgs): { b: number; lq: number; lk: number; H: number; dk: number; dv: number; keys: number } {
  checkSameBackend(op, a.out, a.q, a.k, a.v);
  const [b, lq, qc] = check3(op, 'q', a.q);
  const [bk, lk, kc] = check3(op, 'k', a.k);
  const [bv, lv, vc] = check3(op, 'v', a.v);
  const H = a.heads;
  if (!(Number.isInteger(H) && H > 0 && qc % H === 0 && vc % H === 0)) fail('BAD_ARGUMENT', `${op}: heads ${H} must be a positive integer dividing the widths of q (${qc}) and v (${vc})`);
  if (bk !== b || bv !== b || lv !== lk) fail('SHAPE_MISMATCH', `${op}: q ${fmtShape(a.q.shape)}, k ${fmtShape(a.k.shape)} and v ${fmtShape(a.v.shape)} must share the batch, and k and v the length`);
  if (kc !== qc) fail('SHAPE_MISMATCH', `${op}: k has width ${kc}, expected q's ${qc}`);
  checkFloat(op, 'out', a.out);
  checkShape(op, 'out', a.out.shape, [b, lq, vc]);
  const keys = a.keys ?? lk;
  if (!(Number.isInteger(keys) && keys >= lq && keys <= lk)) fail('BAD_ARGUMENT', `${op}: keys must be an integer in [${lq}, ${lk}] (at least one key per query, at most the rows of k), got ${keys}`);
  if (!Number.isFinite(a.scale)) fail('BAD_ARGUMENT', `${op}: scale must be a finite number, got ${a.scale}`);
  return { b, lq, lk, H, dk: qc / H, dv: vc / H, keys };
}

export function checkAttentionBackward(a: AttentionBackwardArgs): { b: number; l: number; H: number; dk: number; dv: number } {
  const op = 'attentionBackward';
  const d = checkAttention(op, { out: a.g, q: a.q, k: a.k, v: a.v, heads: a.heads, scale: a.scale });
  if (d.lq !== d.lk) fail('SHAPE_MISMATCH', `${op}: q has ${d.lq} rows per sequence and k ${d.lk}; the gradient is for full causal attention (equal lengths)`);
  checkSameBackend(op, a.dq, a.dk, a.dv, a.g);
  for (const [what, t, like] of [['dq', a.dq, a.q], ['dk', a.dk, a.k], ['dv', a.dv, a.v]] as const) { checkFloat(op, what, t); checkShape(op, what, t.shape, like.shape); }
  return { b: d.b, l: d.lq, H: d.H, dk: d.dk, dv: d.dv };
}

export function checkRotary(out: Tensor, x: Tensor, o: RotaryOptions): { b: number; l: number; H: number; dh: number } {
  const op = 'rotary';
  checkSameBackend(op, out, x);
  const [b, l, w] = check3(op, 'x', x);
  checkFloat(op, 'out', out);
  checkShape(op, 'out', out.shape, [b, l, w]);
  const dh = o.headDim;
  if (!(Number.isInteger(dh) && dh > 0 && dh % 2 === 0 && w % dh === 0)) fail('BAD_ARGUMENT', `${op}: headDim must be an even positive integer dividing the width ${w}, got ${dh}`);
  if (!(Number.isInteger(o.start) && o.start >= 0)) fail('BAD_ARGUMENT', `${op}: start must be a non-negative integer, got ${o.start}`);
  if (!(o.base > 1)) fail('BAD_ARGUMENT', `${op}: base must be > 1, got ${o.base}`);
  return { b, l, H: w / dh, dh };
}
