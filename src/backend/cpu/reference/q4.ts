import { fail } from '../../../errors.js';
import { f16ToF32Table, f32ToF16Bits } from '../../../tensor/dtype.js';
import { embeddingDequant, matmulDequantCols, readF32Bias } from './dequant-matmul.js';
import { matmulInt8Cols } from './int8-activations.js';
import type { FView } from './view.js';

/**
 * The q4 weight format and its reference kernels (the specification the WebAssembly and WGSL kernels
 * are tested against). Symmetric 4-bit blocks with an f16 scale, like llama.cpp's Q4_0
 * (ggml-quants.c, quantize_row_q4_0_ref), 4.5 bits per weight (docs/weights.md says why this and not
 * the asymmetric Q4_1 form):
 *
 *   each row of `cols` elements is cut into nb = ceil(cols / 32) blocks of 32 (the last one padded
 *   with zeros); per block, with w* the element of largest |w| (the first such, sign kept),
 *   d = f16(w* / -8) and q = min(15, trunc(w / d + 8.5)) in [0, 15] (zero padding has q 8);
 *   the value of element c is (q[c] - 8) * d[c / 32], so w* itself is exactly -8 d.
 *
 * Storage (one block of bytes, so it sits in one arena): the quants, rows x ld / 2 bytes with
 * ld = nb * 32: byte i (0..15) of a block holds element i in its low nibble and element i + 16 in its
 * high nibble (the SIMD kernels unpack a block with one AND and one shift); then the scales, rows x nb
 * f16 bit patterns. Both parts start at multiples of 16 bytes. A tensor of this dtype has `ld` = the
 * padded row length in elements and offset 0; views (narrow) of q4 tensors are not supported.
 * Rounding error per element is at most |d| / 2 = max|w| / 16 of its block (plus the f16 rounding of d), except
 * for elements beyond 7|d| on the side opposite w* (the grid is -8..7 steps): at most |d| there.
 */
export const Q4_BLOCK = 32;

export interface Q4Layout {
  rows: number;
  cols: number;
  /** Padded row length in elements (two per byte). */
  ld: number;
  /** Blocks (and scales) per row. */
  nb: number;
  /** Byte offset of the scales. */
  scaleOffset: number;
  /** Total bytes. */
  bytes: number;
}

export function q4Layout(rows: number, cols: number): Q4Layout {
  const nb = Math.ceil(cols / Q4_BLOCK);
  const ld = nb * Q4_BLOCK;
  const scaleOffset = (rows * ld) / 2;
  return { rows, cols, ld, nb, scaleOffset, bytes: scaleOffset + rows * nb * 2 };
}

/** A q4 matrix as the kernels see it. */
export interface Q4View {
  q: Uint8Array; // rows x ld / 2 bytes, two quants each
  s: Uint16Array; // rows x nb f16 scales
  ld: number;
  nb: number;
  rows: number;
  cols: number;
}

export function q4View(storage: Uint8Array | Int8Array, rows: number, cols: number): Q4View {
  const L = q4Layout(rows, cols);
  if (storage.length < L.bytes)
    fail('SHAPE_MISMATCH', `q4 storage of ${storage.length} bytes for (${rows}, ${cols}), expected ${L.bytes}`);
  return {
    q: new Uint8Array(storage.buffer, storage.byteOffset, L.scaleOffset),
    s: new Uint16Array(storage.buffer, storage.byteOffset + L.scaleOffset, rows * L.nb),
    ld: L.ld,
    nb: L.nb,
    rows,
    cols,
  };
}

const f = Math.fround;

/** Quantises src (rows x cols, row-major f32) into the q4 storage `dst` (q4Layout(rows, cols).bytes). */
export function quantizeQ4(src: Float32Array, rows: number, cols: number, dst: Uint8Array | Int8Array): void {
  const v = q4View(dst, rows, cols);
  const t16 = f16ToF32Table();
  const q = new Uint8Array(Q4_BLOCK);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < v.nb; b++) {
      const c0 = b * Q4_BLOCK,
        c1 = Math.min(cols, c0 + Q4_BLOCK);
      let amax = 0,
        max = 0;
      for (let c = c0; c < c1; c++) {
        const w = src[r * cols + c];
        if (Math.abs(w) > amax) {
          amax = Math.abs(w);
          max = w;
        }
      }
      if (amax / 8 > 65504)
        fail(
          'UNSUPPORTED',
          `q4: row ${r} holds ${max}; the format's f16 scale (max|w| / 8) holds weights up to 524032 only`,
        );
      const dBits = max ? f32ToF16Bits(max / -8) : 0; // (an all-zero block: +0, not -0)
      const d = t16[dBits]; // quantise against the scale as stored
      const id = d ? f(1 / d) : 0;
      v.s[r * v.nb + b] = dBits;
      for (let c = 0; c < Q4_BLOCK; c++) {
        const w = c0 + c < c1 ? src[r * cols + c0 + c] : 0;
        q[c] = Math.min(15, Math.max(0, Math.trunc(f(f(w * id) + 8.5))));
      }
      const o = (r * v.ld + c0) >> 1;
      for (let i = 0; i < 16; i++) v.q[o + i] = q[i] | (q[i + 16] << 4);
    }
  }
}

/** The quant (0..15) of element (r, c). */
export function q4Quant(v: Q4View, r: number, c: number): number {
  const i = c & 31;
  const byte = v.q[((r * v.ld + c - i) >> 1) + (i & 15)];
  return i < 16 ? byte & 15 : byte >> 4;
}

/** Element (r, c) of a q4 matrix. */
export function q4At(v: Q4View, r: number, c: number): number {
  return (q4Quant(v, r, c) - 8) * f16ToF32Table()[v.s[r * v.nb + (c >> 5)]];
}

/** Row r, columns [c0, c0 + n), dequantised into out. */
export function dequantizeQ4Row(v: Q4View, r: number, out: Float32Array, c0 = 0, n = v.cols): Float32Array {
  for (let c = 0; c < n; c++) out[c] = q4At(v, r, c0 + c);
  return out;
}

/**
 * out (m, p) <- [out +] op(a) · B [+ bias] over a q4 matrix. In the Linear layout (transB: blocks run
 * along the depth) with int8 activations (int8-activations.ts, the q4 product's specification: the
 * weights' integers are nibble − 8); otherwise (B = W as stored) matmulDequantCols (dequant-matmul.ts).
 */
export function matmulQ4Cols(
  out: FView,
  a: FView,
  b: Q4View,
  bias: FView | null,
  g: { m: number; q: number; transA: boolean; transB: boolean; accumulate: boolean },
  j0: number,
  j1: number,
): void {
  if (g.transB) {
    const t16 = f16ToF32Table();
    const row = (j: number, ints: Int8Array, scales: Float32Array): void => {
      for (let c = 0; c < b.ld; c++) ints[c] = q4Quant(b, j, c) - 8;
      for (let k = 0; k < b.nb; k++) scales[k] = t16[b.s[j * b.nb + k]];
    };
    matmulInt8Cols(out, a, row, readF32Bias(bias, 'q4'), bias ? bias.off : 0, g, j0, j1);
    return;
  }
  matmulDequantCols(out, a, (r, o, c0, n) => dequantizeQ4Row(b, r, o, c0, n), bias, g, j0, j1, 'q4');
}

/** out (m, d) <- rows ids of a q4 table. */
export function embeddingQ4(out: FView, ids: Int32Array, idsOff: number, table: Q4View, m: number, d: number): void {
  embeddingDequant(out, ids, idsOff, (r, o, c0, n) => dequantizeQ4Row(table, r, o, c0, n), m, d);
}
