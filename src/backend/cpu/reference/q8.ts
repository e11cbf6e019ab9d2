import { fail } from '../../../errors.js';
import { embeddingDequant, matmulDequantCols, readF32Bias } from './dequant-matmul.js';
import { matmulInt8Cols } from './int8-activations.js';
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
 * out (m, p) <- [out +] op(a) · B [+ bias] over a q8 matrix. In the Linear layout (transB: blocks run
 * along the depth) with int8 activations (int8-activations.ts, the q8 product's specification);
 * otherwise (B = W as stored, blocks across the output columns) matmulDequantCols (dequant-matmul.ts).
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
  if (g.transB) {
    const row = (j: number, ints: Int8Array, scales: Float32Array): void => {
      ints.set(b.q.subarray(j * b.ld, (j + 1) * b.ld));
      scales.set(b.s.subarray(j * b.nb, (j + 1) * b.nb));
    };
    matmulInt8Cols(out, a, row, readF32Bias(bias, 'q8'), bias ? bias.off : 0, g, j0, j1);
    return;
  }
  matmulDequantCols(out, a, (r, o, c0, n) => dequantizeQ8Row(b, r, o, c0, n), bias, g, j0, j1, 'q8');
}

/** out (m, d) <- rows ids of a q8 table. */
export function embeddingQ8(out: FView, ids: Int32Array, idsOff: number, table: Q8View, m: number, d: number): void {
  embeddingDequant(out, ids, idsOff, (r, o, c0, n) => dequantizeQ8Row(table, r, o, c0, n), m, d);
}
