import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { join } from 'node:path';
import { GREEDY } from '../../src/backend/sampling.js';
import { deviceTokens } from '../../src/generate/device-loop.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { FAMILY, maxAbsDiff, readExpected } from '../helpers/fixtures.js';
import { greedyRows, logitsOf, stepVsParallel } from '../helpers/parity.js';
import { disposeGpu, requireAdapter, unfused } from '../helpers/webgpu.js';

/**
 * The pure-SSM family fixtures on WebGPU (SwiftShader in CI): falcon-mamba (Mamba-1 with weightless Δ/B/C norms,
 * which take the composed step instead of the fused one) and mamba2-codestral (Mamba-2, gated norm per group).
 * The short prompt: logits within 1e-4 of PyTorch's, greedy tokens identical through the host loop and the recorded
 * device loop, the recurrent step equal to the parallel form at every position.
 */

after(disposeGpu);

for (const name of ['falcon-mamba', 'mamba2-codestral']) {
  test(`${name} on WebGPU: logits within 1e-4, greedy identical, steps equal the parallel form`, async (t) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const model = await loadLanguageModel(join(FAMILY, name), { backend: g });
    const exp = await readExpected(name, FAMILY);
    const err = maxAbsDiff(await logitsOf(model, exp.ids), exp.logits);
    assert.ok(err < 1e-4, `logits: max abs error ${err}`);
    assert.deepEqual(await greedyRows(model, exp.ids, exp.greedy), exp.greedy, 'host generation loop');

    const l = exp.ids[0].length;
    const st = model.initState(1);
    const logits = model.forward(g.upload(Int32Array.from(exp.ids.flat()), [1, l], 'i32'), {
      state: st,
      lastOnly: true,
    });
    const dev = [...exp.ids[0]];
    const n = exp.greedy[0].length - l;
    for await (const got of deviceTokens(model, st, logits, { maxNewTokens: n, sampling: GREEDY, prompts: [[...dev]] }))
      dev.push(got[0]);
    st.dispose();
    assert.deepEqual([dev], exp.greedy, 'deviceTokens (recorded step)');

    const { worst, state } = await stepVsParallel(model, exp.ids);
    state.dispose();
    assert.ok(worst < 1e-4, `step vs parallel: max abs difference ${worst}`);
    console.log(`${name} WebGPU: parallel ${err.toExponential(2)}, step-vs-parallel ${worst.toExponential(2)}`);
  });
}

test("falcon-mamba's step on WebGPU is the fused one plus the three Δ/B/C norm dispatches, with the same logits", async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const model = await loadLanguageModel(join(FAMILY, 'falcon-mamba'), { backend: g });
  const L = model.blocks.length;
  const ids = [3, 5];
  const run = async (): Promise<{ dispatches: number; logits: Float32Array }> => {
    const state = model.initState(2);
    model.stepIds(ids, state);
    const before = g.d.stats.dispatches;
    model.step(g.upload(Int32Array.from(ids), [2], 'i32'), state);
    const dispatches = g.d.stats.dispatches - before;
    const logits = await model.stepIds(ids, state).readFloat();
    state.dispose();
    return { dispatches, logits };
  };
  const fused = await run();
  const plain = await unfused(g, run);
  // embedding + layers (4 of the fused step + 3 norms; without the fused block norm, + 1) + final norm + lm_head
  assert.equal(fused.dispatches, 1 + 7 * L + 1, 'fused dispatches (the final norm taken into lm_head)');
  assert.equal(plain.dispatches, 1 + 8 * L + 2, 'unfused block norm dispatches');
  assert.ok(maxAbsDiff(fused.logits, plain.logits) < 2e-5);
});
