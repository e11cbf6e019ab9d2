import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import type { Mamba2Config } from '../../src/models/config.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { maxAbsDiff, PARITY, readExpected } from '../helpers/fixtures.js';
import { greedyRows, logitsOf, stepVsParallel } from '../helpers/parity.js';

/**
 * Parity with PyTorch for Mamba-2 (transformers 5.17's Mamba2ForCausalLM; fixtures from
 * scripts/fixtures/make_fixtures.py): mamba2-g1-tied (6 heads x 16, 1 group, chunk 4 < prompt 11, tied
 * head) and mamba2-g2-untied (8 heads x 10, 2 groups, chunk 5 not dividing 11, conv 3, biases,
 * time_step_limit (0, 2), untied head). Logits within 1e-4, greedy generation token for token,
 * the recurrent step equal to the chunked form within 1e-5, feeding in pieces equal to all at once.
 */
const FIXTURES = ['mamba2-g1-tied', 'mamba2-g2-untied'];

for (const name of FIXTURES) {
  test(`${name}: loads as Mamba-2 with the fixture's sizes`, async () => {
    const model = await loadLanguageModel(join(PARITY, name));
    const c = model.config as Mamba2Config;
    assert.equal(c.arch, 'mamba2');
    assert.equal(c.dInner, c.nHeads * c.headDim);
    assert.equal(model.blocks[0].mixer.kind, 'mamba2');
  });

  test(`${name}: batch logits match transformers within 1e-4`, async () => {
    const model = await loadLanguageModel(join(PARITY, name));
    const exp = await readExpected(name);
    const err = maxAbsDiff(await logitsOf(model, exp.ids), exp.logits);
    assert.ok(err < 1e-4, `max abs error ${err}`);
  });

  test(`${name}: greedy generation is identical token for token`, async () => {
    const model = await loadLanguageModel(join(PARITY, name));
    const exp = await readExpected(name);
    assert.deepEqual(await greedyRows(model, exp.ids, exp.greedy), exp.greedy);
  });

  test(`${name}: recurrent steps equal the chunked form within 1e-5 at every position`, async () => {
    const model = await loadLanguageModel(join(PARITY, name));
    const exp = await readExpected(name);
    const { worst } = await stepVsParallel(model, exp.ids);
    assert.ok(worst < 1e-5, `max abs difference ${worst}`);
  });

  test(`${name}: feeding a prompt in pieces (across chunk boundaries) gives the logits of all at once`, async () => {
    const model = await loadLanguageModel(join(PARITY, name));
    const exp = await readExpected(name);
    const V = exp.V;
    const whole = await logitsOf(model, exp.ids);
    const l = exp.ids[0].length;
    for (const cuts of [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [3, 7], [2, 9], [6]]) {
      const state = model.initState(exp.ids.length);
      const bounds = [0, ...cuts, l];
      const parts: Float32Array[] = [];
      for (let i = 0; i + 1 < bounds.length; i++) {
        const a = bounds[i],
          z = bounds[i + 1];
        const piece = exp.ids.map((r) => r.slice(a, z));
        const t = cpu().upload(Int32Array.from(piece.flat()), [piece.length, z - a], 'i32');
        parts.push(await model.forward(t, { state }).readFloat());
      }
      // Reassemble (b, l, V) from pieces of (b, z - a, V).
      const joined = new Float32Array(whole.length);
      for (let row = 0; row < exp.ids.length; row++) {
        for (let i = 0; i + 1 < bounds.length; i++) {
          const a = bounds[i],
            len = bounds[i + 1] - a;
          joined.set(parts[i].subarray(row * len * V, (row + 1) * len * V), (row * l + a) * V);
        }
      }
      const err = maxAbsDiff(joined, whole);
      assert.ok(err < 1e-5, `cuts ${cuts}: max abs difference ${err}`);
      assert.equal(state.position, l);
    }
  });
}
