import { matmulCols, type MatmulGeom } from './matmul.js';
import type { FView } from './view.js';

/**
 * The products a backward pass makes, G · W (no transB) and Gᵀ · X (transA), through the fast
 * Linear-layout path of matmul.ts: op(a) is copied to a contiguous (m, q) block and op(b) to a
 * contiguous (p, q) block (a transpose in 32 x 32 tiles), then `matmulCols` runs with
 * transA = false, transB = true. The copies cost O(mq + pq) against the product's O(mpq), and the
 * register-blocked dot products run several times faster than the generic loop. f32 only (16-bit b
 * keeps the generic path, which converts on the fly).
 */
export function matmulRepacked(out: FView, a: FView, b: FView, bias: FView | null, g: MatmulGeom): void {
  const { m, q, p } = g;
  const a2: FView = g.transA ? transposed(a, q, m) : a; // op(a) (m, q)
  const b2: FView = g.transB ? b : transposed(b, q, p); // op(b)ᵀ (p, q)
  matmulCols(out, a2, b2, bias, { ...g, transA: false, transB: true }, 0, p);
}

/** x stored (rows, cols) -> a new contiguous (cols, rows) view. */
function transposed(x: FView, rows: number, cols: number): FView {
  const X = x.data as Float32Array;
  // Same array type as the input (the f64 test backend stores f32 tensors in Float64Array).
  const T = new (X.constructor as Float32ArrayConstructor)(rows * cols);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) {
        const xo = x.off + r * x.ld;
        for (let c = c0; c < c1; c++) T[c * rows + r] = X[xo + c];
      }
    }
  }
  return { data: T, off: 0, ld: rows, dtype: 'f32' };
}
