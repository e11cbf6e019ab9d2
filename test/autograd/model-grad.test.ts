import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initMambaModel } from '../../src/train/init.js';
import { modelConfigFor } from '../../src/train/model-io.js';
import { DEFAULT_SETTINGS } from '../../src/train/settings.js';
import { f64 } from './f64.js';
import { worstModelGradError } from './model-grad-check.js';

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
    const { worst, where } = worstModelGradError(lm, 13);
    assert.ok(worst < 1e-6, `worst relative error ${worst} at ${where}`);
  });
}
