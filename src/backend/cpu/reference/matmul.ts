import { f16ToF32Table, halfToF32 } from '../../../tensor/dtype.js';
import type { FView } from './view.js';

/**
 * out (m, p) <- [out +] op(a) (m, q) · op(b) (q, p) [+ bias (p)]   (the CPU reference; f64 accumulation)
 *
 * Computes output columns [j0, j1) only, so a thread pool can split the work by columns (rows of a
 * Linear weight): each thread then streams its own slice of the weights.
 *
 * Fast path (transB, the Linear layout W (p, q)): dot products of contiguous rows, 4 x 4 register
 * blocking over (rows of a, rows of W) for m >= 4, four weight rows at a time for decode (m < 4).
 * 16-bit weights are converted to f32 one tile of rows at a time (amortised over m rows) or, for
 * decode, inline through the f16 table.
 */
export interface MatmulGeom {
  m: number;
  q: number;
  p: number;
  transA: boolean;
  transB: boolean;
  accumulate: boolean;
}

/** Rows of W per tile: sized so a tile (in f32) stays in a 256 KiB slice of L2. */
function tileRows(q: number): number {
  return Math.max(4, Math.min(256, (Math.floor(65536 / Math.max(q, 1)) >> 2) << 2));
}

let scratch = new Float32Array(0);
function scratchOf(n: number): Float32Array {
  if (scratch.length < n) scratch = new Float32Array(n);
  return scratch;
}

export function matmulCols(
  out: FView,
  a: FView,
  b: FView,
  bias: FView | null,
  g: MatmulGeom,
  j0: number,
  j1: number,
): void {
  if (j1 <= j0 || g.m === 0) return;
  if (g.transB && !g.transA && a.dtype === 'f32') {
    if (g.m < 4) linearSmallM(out, a, b, bias, g, j0, j1);
    else linearTiled(out, a, b, bias, g, j0, j1);
    return;
  }
  generic(out, a, b, bias, g, j0, j1);
}

/** Decode path: for each group of 4 weight rows, 4 dot products with each row of a. */
function linearSmallM(out: FView, a: FView, b: FView, bias: FView | null, g: MatmulGeom, j0: number, j1: number): void {
  const { m, q, accumulate } = g;
  const A = a.data as Float32Array;
  const O = out.data as Float32Array;
  const half = b.dtype !== 'f32';
  const tab = b.dtype === 'f16' ? f16ToF32Table() : null;
  const rowBuf = half ? scratchOf(4 * q) : null;
  for (let j = j0; j < j1; j += 4) {
    const nj = Math.min(4, j1 - j);
    let W: Float32Array;
    let w0: number, w1: number, w2: number, w3: number;
    if (half) {
      // Convert the (up to) 4 rows to f32 once; reused for each of the m rows of a.
      const src = b.data as Uint16Array;
      W = rowBuf!;
      for (let r = 0; r < nj; r++) {
        const so = b.off + (j + r) * b.ld;
        const dof = r * q;
        if (tab) for (let c = 0; c < q; c++) W[dof + c] = tab[src[so + c]];
        else halfToF32(src.subarray(so, so + q), 'bf16', W.subarray(dof, dof + q));
      }
      w0 = 0;
      w1 = q;
      w2 = 2 * q;
      w3 = 3 * q;
    } else {
      W = b.data as Float32Array;
      w0 = b.off + j * b.ld;
      w1 = w0 + (nj > 1 ? b.ld : 0);
      w2 = w0 + (nj > 2 ? 2 * b.ld : 0);
      w3 = w0 + (nj > 3 ? 3 * b.ld : 0);
    }
    for (let i = 0; i < m; i++) {
      const x = a.off + i * a.ld;
      let s0 = 0,
        s1 = 0,
        s2 = 0,
        s3 = 0;
      for (let c = 0; c < q; c++) {
        const xv = A[x + c];
        s0 += xv * W[w0 + c];
        s1 += xv * W[w1 + c];
        s2 += xv * W[w2 + c];
        s3 += xv * W[w3 + c];
      }
      const o = out.off + i * out.ld + j;
      const sums = [s0, s1, s2, s3];
      for (let r = 0; r < nj; r++) {
        let v = sums[r];
        if (bias) v += readF(bias, j + r);
        O[o + r] = accumulate ? O[o + r] + v : v;
      }
    }
  }
}

/** Prefill/training path: tiles of W rows (converted to f32 if 16-bit), 4 x 4 register blocks. */
function linearTiled(out: FView, a: FView, b: FView, bias: FView | null, g: MatmulGeom, j0: number, j1: number): void {
  const { m, q, accumulate } = g;
  const A = a.data as Float32Array;
  const O = out.data as Float32Array;
  const T = tileRows(q);
  const half = b.dtype !== 'f32';
  for (let jt = j0; jt < j1; jt += T) {
    const jt1 = Math.min(j1, jt + T);
    let W: Float32Array;
    let wBase: number;
    let wld: number;
    if (half) {
      W = scratchOf(T * q);
      const src = b.data as Uint16Array;
      for (let r = jt; r < jt1; r++) {
        const so = b.off + r * b.ld;
        halfToF32(src.subarray(so, so + q), b.dtype as 'f16' | 'bf16', W.subarray((r - jt) * q, (r - jt + 1) * q));
      }
      wBase = -jt * q;
      wld = q;
    } else {
      W = b.data as Float32Array;
      wBase = b.off;
      wld = b.ld;
    }
    let i = 0;
    for (; i + 4 <= m; i += 4) {
      const x0 = a.off + i * a.ld,
        x1 = x0 + a.ld,
        x2 = x1 + a.ld,
        x3 = x2 + a.ld;
      let j = jt;
      for (; j + 4 <= jt1; j += 4) {
        const v0 = wBase + j * wld,
          v1 = v0 + wld,
          v2 = v1 + wld,
          v3 = v2 + wld;
        let s00 = 0,
          s01 = 0,
          s02 = 0,
          s03 = 0,
          s10 = 0,
          s11 = 0,
          s12 = 0,
          s13 = 0;
        let s20 = 0,
          s21 = 0,
          s22 = 0,
          s23 = 0,
          s30 = 0,
          s31 = 0,
          s32 = 0,
          s33 = 0;
        for (let c = 0; c < q; c++) {
          const a0 = A[x0 + c],
            a1 = A[x1 + c],
            a2 = A[x2 + c],
            a3 = A[x3 + c];
          const b0 = W[v0 + c],
            b1 = W[v1 + c],
            b2 = W[v2 + c],
            b3 = W[v3 + c];
          s00 += a0 * b0;
          s01 += a0 * b1;
          s02 += a0 * b2;
          s03 += a0 * b3;
          s10 += a1 * b0;
          s11 += a1 * b1;
          s12 += a1 * b2;
          s13 += a1 * b3;
          s20 += a2 * b0;
          s21 += a2 * b1;
          s22 += a2 * b2;
          s23 += a2 * b3;
          s30 += a3 * b0;
          s31 += a3 * b1;
          s32 += a3 * b2;
          s33 += a3 * b3;
        }
        store4(O, out.off + i * out.ld + j, s00, s01, s02, s03, bias, j, accumulate);
        store4(O, out.off + (i + 1) * out.ld + j, s10, s11, s12, s13, bias, j, accumulate);
        store4(O, out.off + (i + 2) * out.ld + j, s20, s21, s22, s23, bias, j, accumulate);
        store4(O, out.off + (i + 3) * out.ld + j, s30, s31, s32, s33, bias, j, accumulate);
      }
      for (; j < jt1; j++) {
        for (let r = 0; r < 4; r++)
          dotStore(O, out, A, a.off + (i + r) * a.ld, W, wBase + j * wld, q, i + r, j, bias, accumulate);
      }
    }
    for (; i < m; i++) {
      for (let j = jt; j < jt1; j++)
        dotStore(O, out, A, a.off + i * a.ld, W, wBase + j * wld, q, i, j, bias, accumulate);
    }
  }
}

function store4(
  O: Float32Array,
  o: number,
  s0: number,
  s1: number,
  s2: number,
  s3: number,
  bias: FView | null,
  j: number,
  acc: boolean,
): void {
  if (bias) {
    s0 += readF(bias, j);
    s1 += readF(bias, j + 1);
    s2 += readF(bias, j + 2);
    s3 += readF(bias, j + 3);
  }
  if (acc) {
    O[o] = O[o] + s0;
    O[o + 1] = O[o + 1] + s1;
    O[o + 2] = O[o + 2] + s2;
    O[o + 3] = O[o + 3] + s3;
  } else {
    O[o] = s0;
    O[o + 1] = s1;
    O[o + 2] = s2;
    O[o + 3] = s3;
  }
}

function dotStore(
  O: Float32Array,
  out: FView,
  A: Float32Array,
  x: number,
  W: Float32Array,
  w: number,
  q: number,
  i: number,
  j: number,
  bias: FView | null,
  acc: boolean,
): void {
  let s = 0;
  for (let c = 0; c < q; c++) s += A[x + c] * W[w + c];
  if (bias) s += readF(bias, j);
  const o = out.off + i * out.ld + j;
  O[o] = acc ? O[o] + s : s;
}

/** Element j of a 1-D float view (any float dtype). */
function readF(v: FView, j: number): number {
  const x = v.data[v.off + j];
  if (v.dtype === 'f32') return x;
  return v.dtype === 'f16' ? f16ToF32Table()[x] : halfToF32(new Uint16Array([x]), 'bf16')[0];
}

/** Element (r, c) of a 2-D float view. */
function at(v: FView, tab: Float32Array, r: number, c: number): number {
  const x = v.data[v.off + r * v.ld + c];
  if (v.dtype === 'f32') return x;
  if (v.dtype === 'f16') return tab[x];
  return bf16(x);
}
const bfBuf = new Float32Array(1);
const bfU = new Uint32Array(bfBuf.buffer);
function bf16(x: number): number {
  bfU[0] = x << 16;
  return bfBuf[0];
}

/**
 * Any transposition: out[i, j] = sum_c A(i, c) B(c, j). Loop order chosen so the innermost loop runs
 * along contiguous memory of b (no transB) or does dot products (transB).
 */
function generic(out: FView, a: FView, b: FView, bias: FView | null, g: MatmulGeom, j0: number, j1: number): void {
  const { m, q, transA, transB, accumulate } = g;
  const O = out.data as Float32Array;
  const tab = f16ToF32Table();
  const acc = new Float64Array(j1 - j0);
  const fastB = b.dtype === 'f32' && !transB;
  const B = b.data as Float32Array;
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    for (let c = 0; c < q; c++) {
      const av = transA ? at(a, tab, c, i) : at(a, tab, i, c);
      if (fastB) {
        const bo = b.off + c * b.ld; // B[bo + j] is B(c, j)
        for (let j = j0; j < j1; j++) acc[j - j0] += av * B[bo + j];
      } else if (transB) for (let j = j0; j < j1; j++) acc[j - j0] += av * at(b, tab, j, c);
      else for (let j = j0; j < j1; j++) acc[j - j0] += av * at(b, tab, c, j);
    }
    const o = out.off + i * out.ld;
    for (let j = j0; j < j1; j++) {
      let v = acc[j - j0];
      if (bias) v += readF(bias, j);
      O[o + j] = accumulate ? O[o + j] + v : v;
    }
  }
}
