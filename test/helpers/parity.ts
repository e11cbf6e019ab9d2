import assert from 'node:assert/strict';
import { generateTokens } from '../../src/generate/generate.js';
import type { LanguageModel, LmConfig } from '../../src/models/lm.js';
import type { ModelState } from '../../src/models/state.js';
import { maxAbsDiff } from './fixtures.js';

/** Parallel-form logits (b, l, V), flattened, for a batch of equal-length id rows. */
export async function logitsOf(model: LanguageModel<LmConfig>, ids: number[][]): Promise<Float32Array> {
  const t = model.backend.upload(Int32Array.from(ids.flat()), [ids.length, ids[0].length], 'i32');
  return model.forward(t).readFloat();
}

/**
 * Feeds the rows one position at a time through the recurrent form and returns the largest absolute
 * difference from the parallel form's logits at any position, with the state it advanced.
 */
export async function stepVsParallel(
  model: LanguageModel<LmConfig>,
  ids: number[][],
): Promise<{ worst: number; state: ModelState }> {
  const b = ids.length,
    l = ids[0].length,
    V = model.vocabSize;
  const parallel = await logitsOf(model, ids);
  const state = model.initState(b);
  let worst = 0;
  for (let t = 0; t < l; t++) {
    const step = await model
      .stepIds(
        ids.map((r) => r[t]),
        state,
      )
      .readFloat();
    for (let i = 0; i < b; i++)
      worst = Math.max(
        worst,
        maxAbsDiff(step.subarray(i * V, (i + 1) * V), parallel.subarray((i * l + t) * V, (i * l + t + 1) * V)),
      );
  }
  return { worst, state };
}

/**
 * Greedy generation from the fixture's prompts (every row, no stop at EOS) for as many tokens as
 * the fixture's `greedy` rows hold: prompt + generated ids per row, to compare with `greedy`.
 */
export async function greedyRows(
  model: LanguageModel<LmConfig>,
  prompts: number[][],
  greedy: number[][],
): Promise<number[][]> {
  const n = greedy[0].length - prompts[0].length;
  const rows: number[][] = prompts.map((p) => [...p]);
  for await (const ev of generateTokens(model, prompts, { greedy: true, maxNewTokens: n, ignoreEos: true }))
    rows[ev.row].push(ev.token);
  return rows;
}

/**
 * A prompt fed in pieces through one state gives the logits of feeding it at once, for each way of
 * cutting it (`cuts`: the positions where a piece ends): asserts each piece's logits within `tol` and the
 * state's position at the end.
 */
export async function checkPiecesMatchWhole(
  model: LanguageModel<LmConfig>,
  ids: number[],
  cuts: number[][] = [[5, 12], [1, 2, 3, 16], [9]],
  tol = 1e-5,
): Promise<void> {
  const V = model.vocabSize;
  const whole = await logitsOf(model, [ids]);
  for (const cut of cuts) {
    const state = model.initState(1);
    const bounds = [0, ...cut, ids.length];
    for (let i = 0; i + 1 < bounds.length; i++) {
      const a = bounds[i],
        z = bounds[i + 1];
      const t = model.backend.upload(Int32Array.from(ids.slice(a, z)), [1, z - a], 'i32');
      const err = maxAbsDiff(await model.forward(t, { state }).readFloat(), whole.subarray(a * V, z * V));
      assert.ok(err < tol, `cuts ${cut}, piece [${a}, ${z}): max abs difference ${err}`);
    }
    assert.equal(state.position, ids.length, `cuts ${cut}: the state's position`);
  }
}
