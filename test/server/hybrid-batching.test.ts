import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModel, DEFAULT_MODEL_DIR } from '../../src/node/load.js';
import { loadHybridModel } from '../../src/models/node/load-checkpoint.js';
import { Model } from '../../src/model.js';
import { FAMILY } from '../helpers/fixtures.js';
import { startServer } from './helpers.js';

// Continuous batching of hybrids (attention layers with KV caches beside the Mamba layers) through the
// official `openai` client: concurrent greedy requests of different prompt lengths, arriving at different
// times and ending at different tokens, share batched decode steps (rows at different context lengths)
// and give the tokens of the same requests sent one at a time, and of the library's generate.

const base = await loadModel(DEFAULT_MODEL_DIR); // (its tokenizer: the fixtures' ids 0..100 as text)
const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 37 + seed * 11) % 97));

for (const name of ['falcon-h1', 'granite-hybrid-rope-dense']) {
  test(`${name}: concurrent requests batch their decode steps and equal sequential requests`, async () => {
    const lm = await loadHybridModel(join(FAMILY, name));
    const hybrid = new Model(lm, base.tokenizer, name);
    // the decode steps' batch sizes (a spy on the engine's only stepping call)
    const sizes: number[] = [];
    const stepIds = lm.stepIds.bind(lm);
    lm.stepIds = (tokens, state) => {
      sizes.push(tokens.length);
      return stepIds(tokens, state);
    };
    const s = await startServer(hybrid, { maxRunning: 4, prefillChunk: 8, snapshotEvery: 16 });
    try {
      const complete = async (prompt: number[], n: number) => {
        const r = await s.client.completions.create({ model: s.modelId, prompt, max_tokens: n, temperature: 0 });
        return r.choices[0].text;
      };
      // six requests for four rows: the last two wait for a row; prompts of several chunks, replies
      // long enough to grow the KV caches past their first capacities
      const prompts = [ids(5, 1), ids(29, 2), ids(12, 3), ids(3, 4), ids(17, 5), ids(40, 6)];
      const lens = [20, 9, 31, 14, 25, 6];
      const concurrent = await Promise.all(
        prompts.map(async (p, i) => {
          await new Promise((r) => setTimeout(r, 3 * i)); // arrivals spread over a few steps
          return complete(p, lens[i]);
        }),
      );
      const batched = Math.max(...sizes);
      assert.ok(batched > 1, `the decode steps ran ${batched} rows at most`);
      const sequential: string[] = [];
      for (const [i, p] of prompts.entries()) sequential.push(await complete(p, lens[i]));
      assert.deepEqual(concurrent, sequential);
      for (const [i, p] of prompts.entries()) {
        const [ref] = await hybrid.generateAll(p, { greedy: true, maxNewTokens: lens[i] });
        assert.equal(concurrent[i], ref!.text, `prompt ${i}`);
      }
    } finally {
      await s.stop();
    }
  });
}
