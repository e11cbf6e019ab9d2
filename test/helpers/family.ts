import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import type { HybridConfig } from '../../src/models/config-hybrid.js';
import type { LanguageModel } from '../../src/models/lm.js';
import { loadHybridModel } from '../../src/models/node/load-checkpoint.js';
import type { WeightDType } from '../../src/models/weights.js';
import { FAMILY, maxAbsDiff, readExpected } from './fixtures.js';
import { greedyRows, logitsOf } from './parity.js';

const PROMPTS = ['expected.safetensors', 'expected-long.safetensors'];

/**
 * Parity of one family fixture (fixtures/family/<name>) with transformers 5.17, on the CPU, for both
 * prompts: logits within `tol`, greedy generation token for token, and the cached step at every
 * position equal to the reference's cached step and to our own parallel form (within `stepTol`).
 */
export function familyParity(name: string, dtype: WeightDType = 'f32', tol = 1e-4, stepTol = 1e-5): void {
  const load = (): Promise<LanguageModel<HybridConfig>> => loadHybridModel(join(FAMILY, name), { dtype });
  for (const file of PROMPTS) {
    test(`${name} (${dtype}, ${file}): logits match transformers within ${tol}`, async (t) => {
      const model = await load();
      const exp = await readExpected(name, FAMILY, file);
      const err = maxAbsDiff(await logitsOf(model, exp.ids), exp.logits);
      t.diagnostic(`max abs logits error ${err.toExponential(2)}`);
      assert.ok(err < tol, `max abs error ${err}`);
    });

    test(`${name} (${dtype}, ${file}): greedy generation is identical token for token`, async () => {
      const model = await load();
      const exp = await readExpected(name, FAMILY, file);
      assert.deepEqual(await greedyRows(model, exp.ids, exp.greedy), exp.greedy);
    });

    test(`${name} (${dtype}, ${file}): the cached step equals the parallel form at every position`, async (t) => {
      const model = await load();
      const exp = await readExpected(name, FAMILY, file);
      assert.ok(exp.stepLogits, 'fixture holds no step_logits');
      const V = model.vocabSize;
      const l = exp.ids[0].length;
      const parallel = await logitsOf(model, exp.ids);
      const state = model.initState(1);
      let vsOurs = 0,
        vsRef = 0;
      for (let i = 0; i < l; i++) {
        const step = await model.stepIds([exp.ids[0][i]], state).readFloat();
        vsOurs = Math.max(vsOurs, maxAbsDiff(step, parallel.subarray(i * V, (i + 1) * V)));
        vsRef = Math.max(vsRef, maxAbsDiff(step, exp.stepLogits.subarray(i * V, (i + 1) * V)));
      }
      t.diagnostic(
        `step vs our parallel ${vsOurs.toExponential(2)}, step vs transformers' step ${vsRef.toExponential(2)}`,
      );
      assert.ok(vsOurs < stepTol, `step vs parallel: max abs difference ${vsOurs}`);
      assert.ok(vsRef < tol, `step vs the reference's cached step: max abs difference ${vsRef}`);
      assert.equal(state.position, l);
    });
  }
}
