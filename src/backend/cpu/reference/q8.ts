import { fail } from '../../../errors.js';
import type { FView } from './view.js';

/**
 * The q8 weight format and its reference kernels (the specification the WebAssembly kernels are
 * tested against). Like llama.cpp's Q8_0 (ggml-quants.c, quantize_row_q8_0_ref), with an f32 scale:
 *
 *   each row of `cols` elements is cut into nb = ceil(cols / 32) blocks of 32 (the last one padded
 *   with zeros); per block d = max|w| / 127, q = round(w / d) (half away from zero) in int8;
 *   the value of element c is q[c] * d[c / 32].
 *
 * Storage (one block of bytes, so it sits in one arena): the quants, rows x ld int8 with
 * ld = nb * 32, then the scales, rows x nb f32. A tensor of this dtype has `ld` = that padded row
 * length and offset 0; views (narrow) of q8 tensors are not supported. Quantisation error per
 * element is at most d / 2 = max|w| / 254 of its block.
 */
export const Q8_BLOCK = 32;

export interface Q8Layout {
  rows: number;
  cols: number;
  /** Padded row length in quants (= bytes). */
  ld: number;
  /** Blocks (and scales) per row. */
  nb: number;
  /** Byte offset of the scales. */
  scaleOffset: number;
  /** Total bytes. */
  bytes: number;
}

export function q8Layout(rows: number, cols: number): Q8Layout {
  const nb = Math.ceil(cols / Q8_BLOCK);
  const ld = nb * Q8_BLOCK;
  return { rows, cols, ld, nb, scaleOffset: rows * ld, bytes: rows * ld + rows * nb * 4 };
}

/** A q8 matrix as the kernels see it. */
export interface Q8View {
  q: Int8Array; // rows x ld quants
  s: Float32Array; // rows x nb scales
  ld: number;
  nb: number;
  rows: number;
  cols: number;
}

export function q8View(storage: Int8Array, rows: number, cols: number): Q8View {
  const L = q8Layout(rows, cols);
  if (storage.length < L.bytes)
    fail('SHAPE_MISMATCH', `q8 storage of ${storage.length} bytes for (${rows}, ${cols}), expected ${L.bytes}`);
  return {
    q: storage.subarray(0, L.scaleOffset),
    s: new Float32Array(storage.buffer, storage.byteOffset + L.scaleOffset, rows * L.nb),
    ld: L.ld,
    nb: L.nb,
    rows,
    cols,
  };
}

const f = Math.fround;
const roundHalfAway = (v: number): number => (v < 0 ? -Math.round(-v) : Math.round(v));

/** Quantises src (rows x cols, row-major f32) into the q8 storage `dst` (q8Layout(rows, cols).bytes). */
export function quantizeQ8(src: Float32Array, rows: number, cols: number, dst: Int8Array): void {
  const v = q8View(dst, rows, cols);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < v.nb; b++) {
      const c0 = b * Q8_BLOCK,
        c1 = Math.min(cols, c0 + Q8_BLOCK);
      let amax = 0;
      for (let c = c0; c < c1; c++) amax = Math.max(amax, Math.abs(src[r * cols + c]));
      const d = f(amax / 127);
      const id = d ? f(1 / d) : 0;
      v.s[r * v.nb + b] = d;
      for (let c = c0; c < c0 + Q8_BLOCK; c++)
        v.q[r * v.ld + c] = c < c1 ? roundHalfAway(f(src[r * cols + c] * id)) : 0;
    }
  }
}

/** Element (r, c) of a q8 matrix. */
export function q8At(v: Q8View, r: number, c: number): number {
  return v.q[r * v.ld + c] * v.s[r * v.nb + (c >> 5)];
}

/** Row r, columns [c0, c0 + n), dequantised into out. */
export function dequantizeQ8Row(v: Q8View, r: number, out: Float32Array, c0 = 0, n = v.cols): Float32Array {
  for (let c = 0; c < n; c++) out[c] = q8At(v, r, c0 + c);
  return out;
}

/**
 * out (m, p) <- [out +] op(a) (m, q) · B (q, p) [+ bias], B from a q8 matrix: B(c, j) = W[j, c]
 * (transB, the Linear layout) or W[c, j]. Output columns [j0, j1) only (a pool splits by columns).
 * f64 sums of the dequantised values, as the float reference (matmul.ts).
 */
export function matmulQ8Cols(
  out: FView,
  a: FView,
  b: Q8View,
  bias: FView | null,
  g: { m: number; q: number; transA: boolean; transB: boolean; accumulate: boolean },
  j0: number,
  j1: number,
): void {
  if (j1 <= j0) return;
  const { m, q, transA, transB, accumulate } = g;
  const A = a.data as Float32Array,
    O = out.data as Float32Array;
  const n = j1 - j0;
  const acc = new Float64Array(n);
  const row = new Float32Array(Math.max(q, n));
  const aAt = (i: number, c: number): number => (transA ? A[a.off + c * a.ld + i] : A[a.off + i * a.ld + c]);
  const biasAt = (j: number): number => (bias ? readF32(bias, j) : 0);
  if (transB) {
    for (let j = j0; j < j1; j++) {
      dequantizeQ8Row(b, j, row, 0, q);
      for (let i = 0; i < m; i++) {
        let s = 0;
        for (let c = 0; c < q; c++) s += aAt(i, c) * row[c];
        const o = out.off + i * out.ld + j;
        const v = s + biasAt(j);
        O[o] = accumulate ? O[o] + v : v;
      }
    }
    return;
  }
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    for (let c = 0; c < q; c++) {
      const av = aAt(i, c);
      dequantizeQ8Row(b, c, row, j0, n);
      for (let t = 0; t < n; t++) acc[t] += av * row[t];
    }
    for (let t = 0; t < n; t++) {
      const o = out.off + i * out.ld + j0 + t;
      const v = acc[t] + biasAt(j0 + t);
      O[o] = accumulate ? O[o] + v : v;
    }
  }
}

/** out (m, d) <- rows ids of a q8 table. */
export function embeddingQ8(out: FView, ids: Int32Array, idsOff: number, table: Q8View, m: number, d: number): void {
  const O = out.data as Float32Array;
  const row = new Float32Array(d);
  for (let i = 0; i < m; i++) {
    dequantizeQ8Row(table, ids[idsOff + i], row, 0, d);
    O.set(row, out.off + i * out.ld);
  }
}

/** Element j of a 1-D f32 view (q8 kernels take f32 biases only). */
function readF32(v: FView, j: number): number {
  if (v.dtype !== 'f32') fail('DTYPE_MISMATCH', `matmul with q8 weights: bias has dtype ${v.dtype}, expected f32`);
  return (v.data as Float32Array)[v.off + j];
}
