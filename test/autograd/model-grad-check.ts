import { backward } from '../../src/autograd/backward.js';
import type { LanguageModel, LmConfig } from '../../src/models/lm.js';
import * as F from '../../src/ops/ops.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { f64 } from './f64.js';

/**
 * A whole language model on the f64 backend: the gradient of the mean cross-entropy (batch 2 x 7,
 * one ignored target per row) for about six sampled elements of every parameter, against central
 * differences (h 1e-6). Returns the worst error relative to that parameter's largest gradient, and where.
 */
export function worstModelGradError(lm: LanguageModel<LmConfig>, vocab: number): { worst: number; where: string } {
  const [b, l] = [2, 7];
  const ids = f64.upload(
    Int32Array.from({ length: b * l }, (_, i) => (i * 5 + 3) % vocab),
    [b, l],
    'i32',
  );
  const tg = f64.upload(
    Int32Array.from({ length: b * l }, (_, i) => (i % 7 === 6 ? -1 : (i * 7 + 1) % vocab)),
    [b, l],
    'i32',
  );
  const params = lm.parameters();
  for (const p of params.values()) p.requiresGrad = true;
  backward(F.crossEntropy(lm.forward(ids), tg));
  const loss = (): number => noGrad(() => f64.read64(F.crossEntropy(lm.forward(ids), tg))[0]);
  let worst = 0,
    where = '';
  for (const [name, p] of params) {
    const data = p.storage as Float64Array;
    const ana = f64.read64(p.grad!);
    let scale = 1e-3;
    for (const v of ana) scale = Math.max(scale, Math.abs(v));
    const step = Math.max(1, Math.floor(p.size / 6));
    for (let k = 0; k < p.size; k += step) {
      const x0 = data[k];
      data[k] = x0 + 1e-6;
      lm.parametersChanged();
      const lp = loss();
      data[k] = x0 - 1e-6;
      lm.parametersChanged();
      const lm2 = loss();
      data[k] = x0;
      lm.parametersChanged();
      const err = Math.abs((lp - lm2) / 2e-6 - ana[k]) / scale;
      if (err > worst) {
        worst = err;
        where = `${name}[${k}]`;
      }
    }
  }
  return { worst, where };
}
