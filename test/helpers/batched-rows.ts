import type { LanguageModel, LmConfig } from '../../src/models/lm.js';
import type { ModelState } from '../../src/models/state.js';
import { copyStateRow, reserveContext } from '../../src/models/state-rows.js';
import { maxAbsDiff } from './fixtures.js';

/**
 * A batched decode step of rows at different context lengths against each row stepped alone: every row
 * is prefilled alone (its own state), the rows are gathered into one batch (copyStateRow, one capacity,
 * ModelState.rowPositions), and both step the same ids for `steps` tokens (the batch's KV caches grow
 * past a capacity on the way). Midway one row leaves the batch as a state of its own (what the server's
 * prompt cache keeps) and steps on alone. Returns the largest difference of logits seen (batch vs alone,
 * and the row taken out vs its reference) and the rows' final positions.
 */
export async function batchedVsAlone(
  model: LanguageModel<LmConfig>,
  prompts: readonly (readonly number[])[],
  steps: number,
): Promise<{ worst: number; positions: number[]; leftWorst: number }> {
  const bk = model.backend;
  const V = model.vocabSize;
  const R = prompts.length;
  const alone: ModelState[] = prompts.map((p) => {
    const s = model.initState(1);
    model.forward(bk.upload(Int32Array.from(p), [1, p.length], 'i32'), { state: s, lastOnly: true }).dispose();
    return s;
  });
  const batch = model.initState(R);
  const lens = prompts.map((p) => p.length);
  reserveContext(batch, Math.max(...lens));
  alone.forEach((s, r) => copyStateRow(batch, r, s, 0, lens[r]));
  batch.rowPositions = [...lens];
  let worst = 0,
    leftWorst = 0;
  let left: { state: ModelState; ref: ModelState; row: number } | null = null;
  for (let t = 0; t < steps; t++) {
    const ids = prompts.map((p, r) => (p[(t * 7 + r) % p.length] + t) % V);
    const got = await model.stepIds(ids, batch).readFloat(); // (R, V)
    for (let r = 0; r < R; r++) {
      const want = await model.stepIds([ids[r]], alone[r]).readFloat();
      worst = Math.max(worst, maxAbsDiff(got.subarray(r * V, (r + 1) * V), want));
    }
    if (left) {
      const a = await model.stepIds([ids[left.row]], left.state).readFloat();
      const b = await model.stepIds([ids[left.row]], left.ref).readFloat();
      leftWorst = Math.max(leftWorst, maxAbsDiff(a, b));
    }
    if (t === steps >> 1) {
      // row 1 leaves: a state of its own holding its filled positions only
      const row = 1,
        pos = batch.rowPositions[row];
      const one = model.initState(1);
      reserveContext(one, pos);
      copyStateRow(one, 0, batch, row, pos);
      one.position = pos;
      left = { state: one, ref: alone[row].clone(), row };
    }
  }
  const positions = [...batch.rowPositions];
  for (const s of [batch, ...alone]) s.dispose();
  if (left) for (const s of [left.state, left.ref]) s.dispose();
  return { worst, positions, leftWorst };
}
