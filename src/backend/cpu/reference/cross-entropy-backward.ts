import type { LossReduction } from '../../contract/training.js';
import { logSumExp, targetOf } from './cross-entropy.js';
import type { FView, View } from './view.js';

/**
 * The gradient of `crossEntropy`: dx_i = g * s * (softmax(x_i) - onehot(t_i)), where s = 1 ('sum')
 * or 1 / count ('mean'), and zero rows where t_i < 0. Softmax as exp(x - logsumexp(x)) in f64.
 */
export function crossEntropyBackward(
  dx: FView,
  logits: FView,
  targets: View,
  g: FView,
  m: number,
  V: number,
  reduction: LossReduction,
): void {
  const X = logits.data as Float32Array,
    T = targets.data as Int32Array,
    D = dx.data as Float32Array;
  let count = 0;
  for (let i = 0; i < m; i++) if (targetOf(T, targets.off + i, V, i) >= 0) count++;
  const scale = (g.data as Float32Array)[g.off] * (reduction === 'sum' ? 1 : count > 0 ? 1 / count : 0);
  for (let i = 0; i < m; i++) {
    const t = T[targets.off + i];
    const o = dx.off + i * dx.ld,
      xo = logits.off + i * logits.ld;
    if (t < 0) {
      D.fill(0, o, o + V);
      continue;
    }
    const lse = logSumExp(X, xo, V);
    for (let v = 0; v < V; v++) D[o + v] = scale * Math.exp(X[xo + v] - lse);
    D[o + t] = D[o + t] - scale;
  }
}
