import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward } from '../../src/autograd/backward.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import * as F from '../../src/ops/ops.js';
import { initMambaModel } from '../../src/train/init.js';
import { modelConfigFor } from '../../src/train/model-io.js';
import { DEFAULT_SETTINGS } from '../../src/train/settings.js';
import { f64 } from './f64.js';

/**
 * A whole Mamba language model (2 layers, odd sizes, tied and untied heads, biases) in f64: the
 * gradient of the mean cross-entropy for sampled elements of every parameter against central
 * differences (h 1e-6). Every op, view and accumulation of the model's forward takes part.
 */
for (const tied of [true, false]) {
  test(`whole model (${tied ? 'tied' : 'untied'} head): every parameter's gradient matches central differences in f64`, async () => {
    const cfg = modelConfigFor(
      { ...DEFAULT_SETTINGS.model, dModel: 10, nLayer: 2, dState: 3, dtRank: 2, tieEmbeddings: tied, useBias: !tied },
      13,
      { eos: 0, bos: 0, pad: 0 },
    );
    const lm = await initMambaModel(cfg, { seed: 5 }, f64);
    const [b, l] = [2, 7];
    const ids = f64.upload(
      Int32Array.from({ length: b * l }, (_, i) => (i * 5 + 3) % 13),
      [b, l],
      'i32',
    );
    const tg = f64.upload(
      Int32Array.from({ length: b * l }, (_, i) => (i % 7 === 6 ? -1 : (i * 7 + 1) % 13)),
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
    assert.ok(worst < 1e-6, `worst relative error ${worst} at ${where}`);
  });
}
