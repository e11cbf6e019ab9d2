import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyRow } from '../../src/generate/generate.js';
import { loadModel, DEFAULT_MODEL_DIR } from '../../src/node/load.js';

// Generation from a saved state (issue 15, "generation from a state"): branching from a prefix P with
// suffix S must give what generating from P + S gives, and leave the state at the end of the text.

const model = await loadModel(DEFAULT_MODEL_DIR);
const P = 'Once upon a time, there was a little dog';
const S = ' who liked to';

test('generate from a state fed with P, prompt S, equals generate from P + S (greedy)', async () => {
  const [whole] = await model.generateAll(P + S, { greedy: true, maxNewTokens: 24, ignoreEos: true });
  const pIds = model.encode(P),
    sIds = model.encode(S);
  assert.deepEqual([...pIds, ...sIds], model.encode(P + S), 'the split must be a token boundary for this test');
  const saved = (await model.feed(pIds)).state;
  const state = saved.clone();
  const [branch] = await model.generateAll(sIds, { greedy: true, maxNewTokens: 24, ignoreEos: true, state });
  assert.deepEqual(branch!.newTokens, whole!.newTokens);
  assert.equal(branch!.text, whole!.text);
  // the state now holds P + S + every new token: continuing it equals feeding all of it from scratch
  assert.equal(state.position, pIds.length + sIds.length + 24);
  const more = model.encode(' and then');
  const cont = await model.feed(more, state);
  const ref = await model.feed([...pIds, ...sIds, ...branch!.newTokens, ...more]);
  const maxDiff = cont.logits.reduce((m, v, i) => Math.max(m, Math.abs(v - ref.logits[i])), 0);
  assert.ok(maxDiff < 1e-3, `logits after continuing differ by ${maxDiff}`);
  // the saved state was not touched: branching again gives the same tokens
  const again = saved.clone();
  const [branch2] = await model.generateAll(sIds, { greedy: true, maxNewTokens: 24, ignoreEos: true, state: again });
  assert.deepEqual(branch2!.newTokens, whole!.newTokens);
  [saved, state, again, cont.state, ref.state].forEach((s) => s !== cont.state && s.dispose());
});

test('a batch from a state: a row that ends early keeps its own end state', async () => {
  const prompts = [model.encode(' A'), model.encode(' The cat sat on')];
  const base = (await model.feed(model.encode(P))).state;
  const alone = async (r: number, n: number): Promise<{ tokens: number[]; logits: Float32Array }> => {
    const s = base.clone();
    const [res] = await model.generateAll(prompts[r], { greedy: true, maxNewTokens: n, ignoreEos: true, state: s });
    const f = await model.feed(model.encode(' end'), s);
    s.dispose();
    return { tokens: res!.newTokens, logits: f.logits };
  };
  const row1 = await alone(1, 12);
  const long0 = (await alone(0, 12)).tokens;
  // row 0 ends through an eos id: its first token that row 1 never produces and it did not produce before
  const k = long0.findIndex((t, i) => i > 0 && !row1.tokens.includes(t) && !long0.slice(0, i).includes(t));
  assert.ok(k > 0, 'no token of row 0 can serve as its end');
  const row0 = await alone(0, k + 1);
  const state = model.newState(2);
  copyRow(state, 0, base, 0);
  copyRow(state, 1, base, 0);
  state.position = base.position;
  const res = await model.generateAll(prompts, { greedy: true, maxNewTokens: 12, eosTokenIds: [long0[k]], state });
  assert.deepEqual(res[0].newTokens, row0.tokens);
  assert.deepEqual(res[1].newTokens, row1.tokens);
  for (const [r, want] of [row0, row1].entries()) {
    const one = model.newState(1);
    copyRow(one, 0, state, r);
    const f = await model.feed(model.encode(' end'), one);
    const d = f.logits.reduce((m, v, i) => Math.max(m, Math.abs(v - want.logits[i])), 0);
    assert.ok(d < 1e-3, `row ${r}: logits after its end state differ by ${d}`);
    one.dispose();
  }
  base.dispose();
  state.dispose();
});
