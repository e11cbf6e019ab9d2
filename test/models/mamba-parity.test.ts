import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import type { WeightDType } from '../../src/models/weights.js';
import { maxAbsDiff, PARITY, readExpected } from '../helpers/fixtures.js';
import { greedyRows, logitsOf, stepVsParallel } from '../helpers/parity.js';

/**
 * Parity with PyTorch (transformers' MambaForCausalLM, fixtures from scripts/fixtures/make_fixtures.py):
 * logits within 1e-4 for a batch, greedy generation token for token, the recurrent step equal to the
 * parallel form within 1e-5, and the state after the prompt equal to transformers' cache.
 */
const FIXTURES: [string, WeightDType][] = [
  ['mamba1-tied', 'f32'],
  ['mamba1-untied', 'f32'], // biases in in_proj/out_proj, no conv bias, explicit dt rank, eps 1e-4, conv width 3
  ['mamba1-f16', 'f32'],
  ['mamba1-f16', 'auto'], // weights kept f16 in memory
  ['mamba1-bf16-sharded', 'auto'],
];

for (const [name, dtype] of FIXTURES) {
  test(`${name} (${dtype}): batch logits match transformers within 1e-4`, async () => {
    const model = await loadLanguageModel(join(PARITY, name), { dtype });
    const exp = await readExpected(name);
    const got = await logitsOf(model, exp.ids);
    const err = maxAbsDiff(got, exp.logits);
    assert.ok(err < 1e-4, `max abs error ${err}`);
  });

  test(`${name} (${dtype}): greedy generation is identical token for token`, async () => {
    const model = await loadLanguageModel(join(PARITY, name), { dtype });
    const exp = await readExpected(name);
    assert.deepEqual(await greedyRows(model, exp.ids, exp.greedy), exp.greedy);
  });
}

test('mamba1-tied: recurrent steps equal the parallel form within 1e-5 at every position', async () => {
  const model = await loadLanguageModel(join(PARITY, 'mamba1-tied'));
  const exp = await readExpected('mamba1-tied');
  const l = exp.ids[0].length;
  const { worst, state } = await stepVsParallel(model, exp.ids);
  assert.ok(worst < 1e-5, `max abs difference ${worst}`);
  assert.equal(state.position, l);
});

test("mamba1-tied: the state after the prompt equals transformers' cache (conv and ssm, every layer)", async () => {
  const model = await loadLanguageModel(join(PARITY, 'mamba1-tied'));
  const exp = await readExpected('mamba1-tied');
  assert.ok(exp.states.size > 0, 'fixture holds no states');
  const b = exp.ids.length,
    l = exp.ids[0].length;
  const state = model.initState(b);
  model.forward(cpu().upload(Int32Array.from(exp.ids.flat()), [b, l], 'i32'), { state, lastOnly: true });
  for (const [name, want] of exp.states) {
    const [, li, kind] = name.split('.');
    const got = await state.layers[Number(li)][kind!].readFloat();
    assert.deepEqual([...state.layers[Number(li)][kind!].shape], want.shape, name);
    const err = maxAbsDiff(got, want.data);
    assert.ok(err < 1e-5, `${name}: max abs error ${err}`);
  }
});

test('feeding a prompt in pieces gives the same logits as all at once', async () => {
  const model = await loadLanguageModel(join(PARITY, 'mamba1-tied'));
  const exp = await readExpected('mamba1-tied');
  const ids = exp.ids[0];
  const whole = await logitsOf(model, [ids]);
  const state = model.initState(1);
  const V = exp.V;
  const parts: Float32Array[] = [];
  for (const [a, z] of [
    [0, 2],
    [2, 7],
    [7, ids.length],
  ] as const) {
    const t = cpu().upload(Int32Array.from(ids.slice(a, z)), [1, z - a], 'i32');
    parts.push(await model.forward(t, { state }).readFloat());
  }
  const joined = new Float32Array(ids.length * V);
  let o = 0;
  for (const p of parts) {
    joined.set(p, o);
    o += p.length;
  }
  assert.ok(maxAbsDiff(joined, whole) < 1e-5);
});
