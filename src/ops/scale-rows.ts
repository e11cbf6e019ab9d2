import { requireMixerKernel } from '../backend/contract/mixers.js';
import { backendOf } from '../backend/backend.js';
import { needsGrad, record, type Tensor } from '../tensor/tensor.js';

/**
 * x (R, C) with row r times s[r]: s (R, 1) constant (no gradient), the gradient g with row r times s[r].
 * (A Linear weight's output r scaled: Falcon-H1's in_proj rows, one multiplier per part.) The backend's
 * `moeAccumulate` kernel (out += weights[:, 0] ⊙ y) into zeros does the product.
 */
export function scaleRows(x: Tensor, s: Tensor): Tensor {
  const bk = backendOf(x);
  const accumulate = requireMixerKernel(bk, 'moeAccumulate');
  const x2 = x.reshape([x.rows, x.cols]);
  const out = bk.zeros(x2.shape);
  accumulate(out, x2, s, 0);
  if (!needsGrad(x)) return out.reshape(x.shape);
  return record('scaleRows', out.reshape(x.shape), [x], [s], (g) => {
    const dx = bk.zeros([x.rows, x.cols]);
    accumulate(dx, g.reshape([x.rows, x.cols]), s, 0);
    return [dx.reshape(x.shape)];
  });
}
