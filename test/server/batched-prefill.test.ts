import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, DEFAULT_MODEL_DIR } from '../../src/node/load.js';
import { Engine } from '../../src/server/engine.js';
import { greedyRequest as request } from '../helpers/engine-request.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { PARITY } from '../helpers/fixtures.js';
import { join } from 'node:path';
import { startServer } from './helpers.js';

// Batched prefill: the engine feeds several prefilling requests' chunks in one forward (rows whose next
// chunk has the same length, src/server/prefill-rows.ts); each request's tokens are those it gets when
// prefilled alone.

const model = await loadModel(DEFAULT_MODEL_DIR);

/** n token ids (no tokenizer round trip: the lengths are exact). */
const ids = (n: number, seed: number): number[] =>
  Array.from({ length: n }, (_, i) => 100 + ((i * 37 + seed * 101) % 1900));

/**
 * Submits a one-token request first: the engine's loop starts on it and runs its forward at once, so
 * every request after it waits for the next tick and is admitted with the others.
 */
function withBlocker(engine: Engine, f: () => Promise<unknown>[], blockerIds = ids(40, 0)): Promise<unknown> {
  const blocker = engine.submit(request(blockerIds, 1, []));
  return Promise.all([blocker, ...f()]);
}

/** Counts the model's forwards (and their ids' shapes) while `f` runs. */
async function countForwards<T>(f: () => Promise<T>, lm = model.lm): Promise<{ result: T; shapes: number[][] }> {
  const shapes: number[][] = [];
  const forward = lm.forward.bind(lm);
  lm.forward = (x: Tensor, o?: Parameters<typeof forward>[1]) => {
    shapes.push([...x.shape]);
    return forward(x, o);
  };
  try {
    return { result: await f(), shapes };
  } finally {
    lm.forward = forward;
  }
}

test('a tick with several prefilling requests of one chunk length runs one forward', async () => {
  const engine = new Engine(model.lm, { maxRunning: 8, maxQueued: 8, prefillChunk: 64, snapshotEvery: 0 });
  const prompts = [ids(20, 1), ids(20, 2), ids(20, 3)];
  const outs = prompts.map(() => [] as number[]);
  const { shapes } = await countForwards(() =>
    withBlocker(engine, () => prompts.map((p, i) => engine.submit(request(p, 6, outs[i])))),
  );
  // after the blocker's: the three prompts (20 tokens each, 60 <= 64) in one forward of 3 rows
  assert.deepEqual(shapes, [
    [1, 40],
    [3, 20],
  ]);
  engine.dispose();
  for (const [i, p] of prompts.entries()) {
    const [ref] = await model.generateAll(p, { greedy: true, maxNewTokens: 6, ignoreEos: true });
    assert.deepEqual(outs[i], ref!.newTokens, `prompt ${i}`);
  }
});

test('shared chunks keep the token budget, the logits rule and each row’s alone chunks', async () => {
  const engine = new Engine(model.lm, { maxRunning: 8, maxQueued: 8, prefillChunk: 64, snapshotEvery: 0 });
  // five of 12 tokens (an ending chunk: at most 3 rows), one of 40 (alone), one of 5 (too short to share)
  const prompts = [ids(12, 1), ids(40, 2), ids(12, 3), ids(12, 4), ids(5, 5), ids(12, 6), ids(12, 7)];
  const outs = prompts.map(() => [] as number[]);
  const { shapes } = await countForwards(() =>
    withBlocker(engine, () => prompts.map((p, i) => engine.submit(request(p, 4, outs[i])))),
  );
  engine.dispose();
  // line order: three 12s share (the 40 and the 5 skipped, the fourth 12 over the logits rule); then
  // the 40 alone (two rows of 40 are over the budget), the 5 alone, the last two 12s
  assert.deepEqual(shapes, [
    [1, 40],
    [3, 12],
    [1, 40],
    [1, 5],
    [2, 12],
  ]);
  for (const s of shapes) assert.ok(s[0] * s[1] <= 64, `${s} over the budget`);
  for (const [i, p] of prompts.entries()) {
    const [ref] = await model.generateAll(p, { greedy: true, maxNewTokens: 4, ignoreEos: true });
    assert.deepEqual(outs[i], ref!.newTokens, `prompt ${i}`);
  }
});

test('concurrent requests of different prompt lengths equal the same requests one at a time (greedy and seeded)', async () => {
  // snapshot marks every 12 tokens: long prompts go in 12-token chunks that rows share mid-prompt, and
  // each row leaves its own snapshots; the cache is cleared between the two runs (no hits)
  for (const cacheBytes of [0, 64 << 20]) {
    const s = await startServer(model, { maxRunning: 8, prefillChunk: 64, snapshotEvery: 12, cacheBytes });
    try {
      const lens = [12, 12, 30, 12, 47, 24, 24, 24, 9, 36];
      const prompts = lens.map((n, i) => ids(n, 10 + i));
      const body = (i: number) => {
        const seeded = i % 2 === 1;
        return {
          model: s.modelId,
          prompt: prompts[i],
          max_tokens: 10 + (i % 4) * 3,
          temperature: seeded ? 0.9 : 0,
          ...(seeded ? { seed: 1000 + i, top_p: 0.95, n: 2 } : {}),
          ignore_eos: true,
        };
      };
      const texts = (r: { choices: { index: number; text: string }[] }) =>
        [...r.choices].sort((a, b) => a.index - b.index).map((c) => c.text);
      const one = (i: number) =>
        s.client.completions.create(body(i) as never) as unknown as Promise<{
          choices: { index: number; text: string }[];
        }>;
      const sequential: string[][] = [];
      for (let i = 0; i < prompts.length; i++) sequential.push(texts(await one(i)));
      s.server.cache?.clear();
      const { result, shapes } = await countForwards(() => Promise.all(prompts.map((_, i) => one(i))));
      assert.deepEqual(result.map(texts), sequential);
      // rows shared forwards: fewer forwards than chunks
      const rows = shapes.reduce((n, x) => n + x[0], 0);
      assert.ok(shapes.length < rows, `${shapes.length} forwards for ${rows} chunks: none shared`);
      for (const x of shapes) assert.ok(x[0] * x[1] <= 64, `a forward of ${x} is over the budget`);
    } finally {
      await s.stop();
    }
  }
});

test('Mamba-2 (SSD chunks of 4): one forward for three prompts, the tokens of each served alone', async () => {
  const lm = await loadLanguageModel(join(PARITY, 'mamba2-g1-tied')); // vocabulary 67
  const small = (n: number, seed: number): number[] =>
    Array.from({ length: n }, (_, i) => 1 + ((i * 7 + seed * 13) % 60));
  const prompts = [small(14, 1), small(14, 2), small(14, 3)];
  const options = { maxRunning: 8, maxQueued: 8, prefillChunk: 64, snapshotEvery: 0 };
  const alone: number[][] = [];
  for (const p of prompts) {
    const e = new Engine(lm, options);
    const out: number[] = [];
    await e.submit(request(p, 8, out));
    e.dispose();
    alone.push(out);
  }
  const engine = new Engine(lm, options);
  const outs = prompts.map(() => [] as number[]);
  const { shapes } = await countForwards(
    () => withBlocker(engine, () => prompts.map((p, i) => engine.submit(request(p, 8, outs[i]))), small(20, 0)),
    lm,
  );
  engine.dispose();
  assert.deepEqual(shapes, [
    [1, 20],
    [3, 14],
  ]);
  assert.deepEqual(outs, alone);
});
