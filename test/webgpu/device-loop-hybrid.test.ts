import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { join } from 'node:path';
import { GREEDY } from '../../src/backend/sampling.js';
import { deviceTokens } from '../../src/generate/device-loop.js';
import { loadHybridModel } from '../../src/models/node/load-checkpoint.js';
import type { ModelState } from '../../src/models/state.js';
import { FAMILY } from '../helpers/fixtures.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

/**
 * The device loop of a hybrid (KV caches) records its step once and replays it, the positions held on
 * the device (ModelState.holdPositionsOnDevice); it records again where a cache grows (capacity 16, then
 * 32, 64: the tokens here cross both). The greedy tokens equal the host loop's (a step per token with the
 * positions passed by the host), for models whose attention steps differently: RoPE with GQA (Granite),
 * attention beside Mamba-2 in one block (Falcon-H1), a shared block with LoRA (Zamba2), MoE (Jamba); and
 * a batch of two rows.
 */
after(disposeGpu);

const NEW_TOKENS = 44; // from positions 5..48: the caches grow at 16 and 32

/** Greedy continuations of `prompts` through host steps (no recording, positions from the host). */
async function hostGreedy(
  model: Awaited<ReturnType<typeof loadHybridModel>>,
  prompts: number[][],
  n: number,
): Promise<number[][]> {
  const b = prompts.length,
    V = model.vocabSize;
  const state = model.initState(b);
  const rows = prompts.map((p) => [...p]);
  let logits = await model
    .forward(model.backend.upload(Int32Array.from(prompts.flat()), [b, prompts[0].length], 'i32'), {
      state,
      lastOnly: true,
    })
    .readFloat();
  for (let i = 0; i < n; i++) {
    const next = rows.map((_, r) => {
      const row = logits.subarray(r * V, (r + 1) * V);
      let best = 0;
      for (let j = 1; j < V; j++) if (row[j] > row[best]) best = j;
      return best;
    });
    next.forEach((id, r) => rows[r].push(id));
    if (i + 1 < n) logits = await model.stepIds(next, state).readFloat();
  }
  state.dispose();
  return rows;
}

/** The attention layers' filled positions as the device holds them. */
async function cacheLengths(state: ModelState): Promise<number[]> {
  const out: number[] = [];
  for (const l of state.layers) if (l.length && l.k) out.push(...(await l.length.readFloat()));
  return out;
}

const CASES: [string, number[][]][] = [
  ['granite-hybrid-rope-dense', [[3, 17, 9, 40, 2]]],
  [
    'granite-hybrid-rope-dense',
    [
      [3, 17, 9, 40, 2],
      [8, 1, 33, 5, 12],
    ],
  ],
  ['falcon-h1', [[3, 17, 9, 40, 2]]],
  ['zamba2', [[3, 17, 9, 40, 2]]],
  ['jamba', [[3, 17, 9, 40, 2]]],
];

for (const [name, prompts] of CASES) {
  test(`${name}, batch ${prompts.length}: the recorded device loop gives the host loop's greedy tokens across cache growth`, async (t) => {
    const gpu = await requireAdapter(t);
    if (!gpu) return;
    const model = await loadHybridModel(join(FAMILY, name), { backend: gpu, dtype: 'auto' });
    const V = model.vocabSize;
    const ids = prompts.map((p) => p.map((id) => id % V));
    const want = await hostGreedy(model, ids, NEW_TOKENS);

    const b = ids.length,
      l = ids[0].length;
    const state = model.initState(b);
    const logits = model.forward(gpu.upload(Int32Array.from(ids.flat()), [b, l], 'i32'), { state, lastOnly: true });
    const rows = ids.map((p) => [...p]);
    const record = gpu.record.bind(gpu);
    let recordings = 0;
    let replays = 0;
    gpu.record = (fn) => {
      recordings++;
      const r = record(fn);
      const replay = r.replay.bind(r);
      r.replay = () => {
        replays++;
        replay();
      };
      return r;
    };
    try {
      for await (const got of deviceTokens(model, state, logits, {
        maxNewTokens: NEW_TOKENS,
        sampling: GREEDY,
        prompts: ids,
      }))
        got.forEach((id, r) => rows[r].push(id));
    } finally {
      gpu.record = record;
    }
    assert.deepEqual(rows, want, 'greedy tokens: recorded device loop vs host loop');
    // the first token comes from the prompt's logits; 43 steps at positions 5..47: those at 16 and 32 grow the
    // caches (capacity 32, 64) unrecorded, the next ones (5, 17, 33) are recorded, every other one replayed
    assert.equal(recordings, 3, 'a recording per cache capacity');
    assert.equal(replays, NEW_TOKENS - 1 - 3 - 2, 'every other step replayed');
    assert.equal(state.position, l + NEW_TOKENS - 1);
    const lengths = await cacheLengths(state);
    assert.ok(lengths.length > 0, 'the model has attention layers');
    assert.deepEqual(lengths, new Array(lengths.length).fill(state.position), 'the caches hold every position');
    assert.equal(state.stepPosition, state.position, 'the positions are back on the host after the loop');
    state.dispose();
  });
}
