import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initMamba2Model } from '../../src/train/init-mamba2.js';
import { settingsConfigFor } from '../../src/train/model-io.js';
import { DEFAULT_SETTINGS } from '../../src/train/settings.js';
import type { Mamba2Config } from '../../src/models/config.js';
import { f64 } from './f64.js';
import { worstModelGradError } from './model-grad-check.js';

/**
 * A whole Mamba-2 language model (2 layers, odd sizes: 3 heads of head_dim 4 in 3 groups, d_state 3,
 * SSD chunks of 3 over sequences of 7) in f64: the gradient of the mean cross-entropy for sampled
 * elements of every parameter against central differences (h 1e-6), as model-grad.test.ts does for
 * Mamba-1. The gated norm runs per group of 4 columns (mamba_ssm's norm) and over all of d_inner.
 */
for (const [tied, groups, perGroupNorm] of [
  [true, 3, false],
  [false, 1, true],
  [true, 3, true],
] as const) {
  test(`whole Mamba-2 model (${tied ? 'tied' : 'untied'} head, ${groups} groups, norm ${perGroupNorm ? 'per group' : 'over d_inner'}): gradients match central differences in f64`, async () => {
    const base = settingsConfigFor(
      {
        ...DEFAULT_SETTINGS.model,
        arch: 'mamba2',
        dModel: 6,
        expand: 2,
        headDim: 4,
        nGroups: groups,
        nLayer: 2,
        dState: 3,
        chunkSize: 3,
        tieEmbeddings: tied,
        useBias: !tied,
      },
      13,
      { eos: 0, bos: 0, pad: 0 },
    ) as Mamba2Config;
    const cfg: Mamba2Config = perGroupNorm ? { ...base, normGroupSize: 4 } : base;
    const lm = await initMamba2Model(cfg, { seed: 5 }, f64);
    const { worst, where } = worstModelGradError(lm, 13);
    assert.ok(worst < 1e-6, `worst relative error ${worst} at ${where}`);
    console.log(`# Mamba-2 model gradient: worst relative error ${worst.toExponential(2)} (${where})`);
  });
}
