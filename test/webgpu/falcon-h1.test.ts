import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { join } from 'node:path';
import { generateTokens } from '../../src/generate/generate.js';
import { loadHybridModel } from '../../src/models/node/load-checkpoint.js';
import { decodeState, encodeState } from '../../src/models/state-io.js';
import { FAMILY, maxAbsDiff, readExpected } from '../helpers/fixtures.js';
import { logitsOf } from '../helpers/parity.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

/**
 * Falcon-H1 (attention and Mamba-2 in parallel, muP multipliers folded into the weights) on WebGPU
 * (SwiftShader in CI) against transformers 5.17's fixtures: logits within 1e-4 for both prompts, the
 * cached step equal to the parallel form at every position, greedy generation identical through the device
 * loop; a state saved, restored and cloned on the GPU continues exactly like the original.
 */
after(disposeGpu);

for (const name of ['falcon-h1', 'falcon-h1-nonorm', 'falcon-h1-biases']) {
  test(`${name} on WebGPU: logits within 1e-4, steps equal the parallel form, greedy identical`, async (t) => {
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
      state.dispose();
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

test('falcon-h1 on WebGPU: a restored state and a clone continue exactly like the original', async (t) => {
  const gpu = await requireAdapter(t);
  if (!gpu) return;
  const model = await loadHybridModel(join(FAMILY, 'falcon-h1'), { backend: gpu });
  const exp = await readExpected('falcon-h1', FAMILY, 'expected-long.safetensors');
  const ids = exp.ids[0];
  const state = model.initState(1);
  model.forward(model.backend.upload(Int32Array.from(ids.slice(0, 10)), [1, 10], 'i32'), { state });
  const restored = await decodeState(model, await encodeState(model, state));
  const clone = state.clone();
  for (let t = 10; t < ids.length; t++) {
    const a = await model.stepIds([ids[t]], state).readFloat();
    assert.deepEqual(await model.stepIds([ids[t]], restored).readFloat(), a, `restored state at position ${t}`);
    assert.deepEqual(await model.stepIds([ids[t]], clone).readFloat(), a, `cloned state at position ${t}`);
  }
  for (const s of [state, restored, clone]) s.dispose();
});
