import type { AdamWStepOptions } from '../../contract/training.js';
import type { FView } from './view.js';

/**
 * One AdamW step in place (contract in backend/contract/), element by element, as torch.optim.AdamW
 * (single-tensor path): decay first, then the Adam update with bias-corrected moments.
 */
export function adamwStep(
  p: FView,
  grad: FView,
  m: FView,
  v: FView,
  rows: number,
  cols: number,
  o: AdamWStepOptions,
): void {
  const P = p.data as Float32Array,
    G = grad.data as Float32Array,
    M = m.data as Float32Array,
    Vv = v.data as Float32Array;
  const { lr, beta1: b1, beta2: b2, eps, weightDecay, step } = o;
  const gs = o.gradScale ?? 1;
  const decay = 1 - lr * weightDecay;
  const stepSize = lr / (1 - b1 ** step);
  const bc2Sqrt = Math.sqrt(1 - b2 ** step);
  for (let r = 0; r < rows; r++) {
    const po = p.off + r * p.ld,
      go = grad.off + r * grad.ld,
      mo = m.off + r * m.ld,
      vo = v.off + r * v.ld;
    for (let c = 0; c < cols; c++) {
      const g = G[go + c] * gs;
      const mi = b1 * M[mo + c] + (1 - b1) * g;
      const vi = b2 * Vv[vo + c] + (1 - b2) * g * g;
      M[mo + c] = mi;
      Vv[vo + c] = vi;
      P[po + c] = P[po + c] * decay - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
    }
  }
}
