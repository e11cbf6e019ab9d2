import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { join } from 'node:path';
import { generateTokens } from '../../src/generate/generate.js';
import { loadHybridModel } from '../../src/models/node/load-checkpoint.js';
import { FAMILY, maxAbsDiff, readExpected } from '../helpers/fixtures.js';
import { logitsOf } from '../helpers/parity.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

/**
 * The Mamba + attention hybrids on WebGPU (SwiftShader in CI) against transformers 5.17's fixtures:
 * logits within 1e-4 for both prompts, greedy generation identical through the device loop (sampling on
 * the GPU, the step recorded with the positions on the device: device-loop-hybrid.test.ts), and the cached step equal to the
 * parallel form at every position. The MoE layers run each token's chosen experts (moeExperts).
 */
after(disposeGpu);

const FIXTURES = [
  'granite-hybrid-nope',
  'granite-hybrid-rope-dense',
  'granite-hybrid-bf16-sharded',
  'bamba',
  'nemotron-h',
  'zamba2',
  'jamba',
];

for (const name of FIXTURES) {
  test(`${name} on WebGPU: logits within 1e-4, greedy identical, steps equal the parallel form`, async (t) => {
    const gpu = await requireAdapter(t);
    if (!gpu) return;
    const model = await loadHybridModel(join(FAMILY, name), { backend: gpu, dtype: 'auto' });
    for (const file of ['expected.safetensors', 'expected-long.safetensors']) {
      const exp = await readExpected(name, FAMILY, file);
      const parallel = await logitsOf(model, exp.ids);
      const err = maxAbsDiff(parallel, exp.logits);
      t.diagnostic(`${file}: max abs logits error ${err.toExponential(2)}`);
      assert.ok(err < 1e-4, `${file}: logits max abs error ${err}`);
      const l = exp.ids[0].length,
        V = model.vocabSize;
      const state = model.initState(1);
      let worst = 0;
      for (let i = 0; i < l; i++) {
        const step = await model.stepIds([exp.ids[0][i]], state).readFloat();
        worst = Math.max(worst, maxAbsDiff(step, parallel.subarray(i * V, (i + 1) * V)));
      }
      t.diagnostic(`${file}: step vs parallel ${worst.toExponential(2)}`);
      assert.ok(worst < 1e-4, `${file}: step vs parallel max abs difference ${worst}`);
      const row = [...exp.ids[0]];
      const n = exp.greedy[0].length - l;
      for await (const ev of generateTokens(model, exp.ids, { greedy: true, maxNewTokens: n, ignoreEos: true }))
        row.push(ev.token);
      assert.deepEqual(row, exp.greedy[0], `${file}: greedy`);
    }
  });
}
