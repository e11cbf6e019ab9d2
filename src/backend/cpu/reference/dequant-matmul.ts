import { fail } from '../../../errors.js';
import type { FView } from './view.js';

/**
 * The products and gathers of block-quantised weights (q8, q4), written once over a row dequantiser:
 * `row(r, out, c0, n)` writes columns [c0, c0 + n) of weight row r into out, as f32.
 */
export type DequantizeRow = (r: number, out: Float32Array, c0: number, n: number) => void;

/**
 * out (m, p) <- [out +] op(a) (m, q) · B (q, p) [+ bias], B from a quantised matrix W: B(c, j) = W[j, c]
 * (transB, the Linear layout) or W[c, j]. Output columns [j0, j1) only (a pool splits by columns).
 * f64 sums of the dequantised values, as the float reference (matmul.ts). `format` names the weights in
 * errors.
 */
export function matmulDequantCols(
  out: FView,
  a: FView,
  row: DequantizeRow,
  bias: FView | null,
  g: { m: number; q: number; transA: boolean; transB: boolean; accumulate: boolean },
  j0: number,
  j1: number,
  format: string,
): void {
  if (j1 <= j0) return;
  const { m, q, transA, transB, accumulate } = g;
  const A = a.data as Float32Array,
    O = out.data as Float32Array;
  const n = j1 - j0;
  const acc = new Float64Array(n);
  const w = new Float32Array(Math.max(q, n));
  const aAt = (i: number, c: number): number => (transA ? A[a.off + c * a.ld + i] : A[a.off + i * a.ld + c]);
  const biasAt = (j: number): number => (bias ? readF32(bias, j, format) : 0);
  if (transB) {
    for (let j = j0; j < j1; j++) {
      row(j, w, 0, q);
      for (let i = 0; i < m; i++) {
        let s = 0;
        for (let c = 0; c < q; c++) s += aAt(i, c) * w[c];
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
      row(c, w, j0, n);
      for (let t = 0; t < n; t++) acc[t] += av * w[t];
    }
    for (let t = 0; t < n; t++) {
      const o = out.off + i * out.ld + j0 + t;
      const v = acc[t] + biasAt(j0 + t);
      O[o] = accumulate ? O[o] + v : v;
    }
  }
}

/** out (m, d) <- rows ids of a quantised table. */
export function embeddingDequant(
  out: FView,
  ids: Int32Array,
  idsOff: number,
  row: DequantizeRow,
  m: number,
  d: number,
) {
  const O = out.data as Float32Array;
  const w = new Float32Array(d);
  for (let i = 0; i < m; i++) {
    row(ids[idsOff + i], w, 0, d);
    O.set(w, out.off + i * out.ld);
  }
}

/** The data of an f32 bias (quantised products take f32 biases only), or null. */
export function readF32Bias(bias: FView | null, format: string): Float32Array | null {
  if (!bias) return null;
  readF32(bias, 0, format);
  return bias.data as Float32Array;
}

/** Element j of a 1-D f32 view (quantised products take f32 biases only). */
function readF32(v: FView, j: number, format: string): number {
  if (v.dtype !== 'f32')
    fail('DTYPE_MISMATCH', `matmul with ${format} weights: bias has dtype ${v.dtype}, expected f32`);
  return (v.data as Float32Array)[v.off + j];
}
