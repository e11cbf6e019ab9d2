import type { ReduceOp } from '../../contract/training.js';
import type { FView } from './view.js';

/**
 * Column reduction over rows (contract in backend/contract/): out[j] <- [out[j] +] sum_i f(x[i, j]),
 * f(v) = v ('sum') or v^2 ('sumSquares'). Accumulated in f64, rounded once on store.
 * x (m, p); out (p).
 */
export function reduceRows(op: ReduceOp, out: FView, x: FView, m: number, p: number, accumulate: boolean): void {
  const O = out.data as Float32Array,
    X = x.data as Float32Array;
  const acc = new Float64Array(p);
  for (let i = 0; i < m; i++) {
    const o = x.off + i * x.ld;
    if (op === 'sum') for (let j = 0; j < p; j++) acc[j] += X[o + j];
    else
      for (let j = 0; j < p; j++) {
        const v = X[o + j];
        acc[j] += v * v;
      }
  }
  for (let j = 0; j < p; j++) O[out.off + j] = accumulate ? O[out.off + j] + acc[j] : acc[j];
}
