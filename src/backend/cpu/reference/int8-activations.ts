import type { FView } from './view.js';

/**
 * Products of block-quantised weights (q8, q4) in the Linear layout with int8 activations, as
 * llama.cpp multiplies Q8_0 / Q4_0 weights by Q8_0 activations (ggml-quants.c, quantize_row_q8_0_ref
 * and ggml_vec_dot_q8_0_q8_0 / _q4_0_q8_0). This is the specification of the q8 and q4 products
 * out = x · Wᵀ (transB); the WebAssembly kernels (matvec.wat, gemm-int8.wat) give the same bits.
 *
 * Activations: each row of x is cut into blocks of 32 along the depth (the weights' blocks); per
 * block dx = f32(max|x| / 127), xq = round(x / dx) half away from zero (x times f32(1 / dx), in f32),
 * int8 in [-127, 127], 0 past the depth q. Per output (i, j), in f32 with a rounding after each step:
 *
 *   v = [out[i, j]] [+ bias[j]];   for each block b in order: v += f32(Σ xq·wq) · (dx_b · dw_b)
 *
 * where wq are the weights' integers (q8: the quants; q4: nibble − 8) and Σ xq·wq is exact (an i32,
 * at most 32 · 127 · 127 in magnitude, so exact in f32 too). The activation rounding adds an error of
 * at most max|x_block| / 254 per element: for trained models well under the weights' own rounding
 * (docs/cpu-performance.md, "Weight formats and their accuracy").
 */
export const ACT_BLOCK = 32;

const f = Math.fround;
const roundHalfAway = (v: number): number => (v < 0 ? -Math.round(-v) : Math.round(v));

/** Row i of op(a) (m, q) quantised: xq (nb * 32 int8) and dx (nb f32) of that row. */
export function quantizeActivationRow(
  a: FView,
  transA: boolean,
  i: number,
  q: number,
  xq: Int8Array,
  dx: Float32Array,
): void {
  const A = a.data as Float32Array;
  const at = (c: number): number => (transA ? A[a.off + c * a.ld + i] : A[a.off + i * a.ld + c]);
  const nb = Math.ceil(q / ACT_BLOCK);
  for (let b = 0; b < nb; b++) {
    const c0 = b * ACT_BLOCK,
      c1 = Math.min(q, c0 + ACT_BLOCK);
    let amax = 0;
    for (let c = c0; c < c1; c++) amax = Math.max(amax, Math.abs(at(c)));
    const d = f(amax / 127);
    const id = d > 0 ? f(1 / d) : 0;
    dx[b] = d;
    for (let c = c0; c < c0 + ACT_BLOCK; c++) xq[c] = c < c1 ? roundHalfAway(f(at(c) * id)) : 0;
  }
}

/**
 * The integers and scales of weight row j: ints (nb * 32, zero past the row's columns) and scales (nb).
 * Written by q8.ts and q4.ts over their storage.
 */
export type WeightRowInts = (j: number, ints: Int8Array, scales: Float32Array) => void;

/**
 * out (m, p) <- [out +] op(a) (m, q) · Wᵀ [+ bias] for a block-quantised W (p, q) given by its rows'
 * integers and scales; output columns [j0, j1) only (a pool splits by columns). The spec above.
 */
export function matmulInt8Cols(
  out: FView,
  a: FView,
  row: WeightRowInts,
  bias: Float32Array | null,
  biasOff: number,
  g: { m: number; q: number; transA: boolean; accumulate: boolean },
  j0: number,
  j1: number,
): void {
  if (j1 <= j0) return;
  const { m, q, transA, accumulate } = g;
  const O = out.data as Float32Array;
  const nb = Math.ceil(q / ACT_BLOCK),
    ld = nb * ACT_BLOCK;
  const xq = new Int8Array(m * ld),
    dx = new Float32Array(m * nb);
  for (let i = 0; i < m; i++)
    quantizeActivationRow(a, transA, i, q, xq.subarray(i * ld, (i + 1) * ld), dx.subarray(i * nb, (i + 1) * nb));
  const wq = new Int8Array(ld),
    dw = new Float32Array(nb);
  for (let j = j0; j < j1; j++) {
    row(j, wq, dw);
    for (let i = 0; i < m; i++) {
      const o = out.off + i * out.ld + j;
      let v = accumulate ? O[o] : 0;
      if (bias) v = f(v + bias[biasOff + j]);
      for (let b = 0; b < nb; b++) {
        let s = 0;
        for (let c = b * ACT_BLOCK, x0 = i * ld; c < (b + 1) * ACT_BLOCK; c++) s += xq[x0 + c] * wq[c];
        v = f(v + f(s * f(dx[i * nb + b] * dw[b])));
      }
      O[o] = v;
    }
  }
}
