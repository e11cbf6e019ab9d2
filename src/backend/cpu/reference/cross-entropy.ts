import { fail } from '../../../errors.js';
import type { LossReduction } from '../../contract/training.js';
import type { FView, View } from './view.js';

/**
 * Cross-entropy over rows of logits (contract in backend/contract/), in f64:
 *   nll_i = logsumexp(x_i) - x_i[t_i] = log sum_v exp(x_iv - max_i) + max_i - x_i[t_i]
 * rows with t_i < 0 are ignored; out[0] = the sum, or the mean over the rows with a target.
 */
export function crossEntropy(
  out: FView,
  logits: FView,
  targets: View,
  m: number,
  V: number,
  reduction: LossReduction,
): void {
  const X = logits.data as Float32Array,
    T = targets.data as Int32Array;
  let sum = 0,
    count = 0;
  for (let i = 0; i < m; i++) {
    const t = targetOf(T, targets.off + i, V, i);
    if (t < 0) continue;
    sum += logSumExp(X, logits.off + i * logits.ld, V) - X[logits.off + i * logits.ld + t];
    count++;
  }
  (out.data as Float32Array)[out.off] = reduction === 'sum' ? sum : count > 0 ? sum / count : 0;
}

/** The target of row i: an id in [0, V), or negative (ignored); anything else is an error. */
export function targetOf(T: Int32Array, at: number, V: number, row: number): number {
  const t = T[at];
  if (t >= V)
    fail(
      'TOKEN_OUT_OF_RANGE',
      `crossEntropy: target id ${t} of row ${row} is outside the ${V} logits (ids 0..${V - 1}; negative ids are ignored)`,
      { id: t, row, vocabSize: V },
    );
  return t;
}

export function logSumExp(X: Float32Array, o: number, V: number): number {
  let mx = -Infinity;
  for (let v = 0; v < V; v++) if (X[o + v] > mx) mx = X[o + v];
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(X[o + v] - mx);
  return Math.log(s) + mx;
}
