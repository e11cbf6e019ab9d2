import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import { prefill } from '../../src/generate/generate.js';
import { hybridStateBytes } from '../../src/models/config-hybrid.js';
import { loadHybridModel, openWeights } from '../../src/models/node/load-checkpoint.js';
import { decodeState, encodeState } from '../../src/models/state-io.js';
import { FAMILY, maxAbsDiff, readExpected } from '../helpers/fixtures.js';
import { checkPiecesMatchWhole, logitsOf } from '../helpers/parity.js';

/**
 * The state of a hybrid (Mamba-2 recurrent states + attention KV caches) as a value: feeding a prompt
 * in pieces equals feeding it at once, and a state saved to bytes and restored, or cloned, continues
 * exactly like the original, past the point where the KV cache grows. Its size splits into bytes that
 * stay constant and bytes per token of context.
 */
const NAME = 'granite-hybrid-rope-dense'; // attn/M/M/attn with RoPE: positions matter

test(`${NAME}: a prompt fed in pieces through the state gives the logits of all at once`, async () => {
  const model = await loadHybridModel(join(FAMILY, NAME));
  const exp = await readExpected(NAME, FAMILY, 'expected-long.safetensors');
  const ids = exp.ids[0];
  await checkPiecesMatchWhole(model, ids);
});

test(`${NAME}: a saved and restored state, and a clone, continue exactly like the original`, async () => {
  const model = await loadHybridModel(join(FAMILY, NAME));
  const exp = await readExpected(NAME, FAMILY, 'expected-long.safetensors');
  const ids = exp.ids[0];
  const V = model.vocabSize;
  const whole = await logitsOf(model, [ids]);
  const state = model.initState(1);
  const cut = 10;
  model.forward(model.backend.upload(Int32Array.from(ids.slice(0, cut)), [1, cut], 'i32'), { state });
  const bytes = await encodeState(model, state);
  const restored = await decodeState(model, bytes);
  const clone = state.clone();
  assert.equal(restored.position, cut);
  for (let t = cut; t < ids.length; t++) {
    const a = await model.stepIds([ids[t]], state).readFloat();
    const b = await model.stepIds([ids[t]], restored).readFloat();
    const c = await model.stepIds([ids[t]], clone).readFloat();
    assert.deepEqual(b, a, `restored state at position ${t}`);
    assert.deepEqual(c, a, `cloned state at position ${t}`);
    const err = maxAbsDiff(a, whole.subarray(t * V, (t + 1) * V));
    assert.ok(err < 1e-5, `position ${t}: max abs difference ${err}`);
  }
  // 17 positions outgrew the first capacity (16): the caches grew, and a grown state saves and loads
  assert.ok(state.layers[0].k.dim(1) >= ids.length);
  const again = await decodeState(model, await encodeState(model, state));
  assert.deepEqual([...again.layers[0].k.shape], [...state.layers[0].k.shape]);
  const x = await model.stepIds([3], state).readFloat();
  const y = await model.stepIds([3], again).readFloat();
  assert.deepEqual(y, x);
});

test(`${NAME}: the state reports constant bytes and bytes per token of context separately`, async () => {
  const model = await loadHybridModel(join(FAMILY, NAME));
  const c = model.config;
  const state = model.initState(2);
  const m = c.mamba!;
  const conv = m.dInner + 2 * m.nGroups * m.dState;
  const nMamba = c.layers.filter((l) => l.mixer === 'mamba2').length;
  const nAttn = c.layers.filter((l) => l.mixer === 'attention').length;
  // per sequence: conv (c, k) + ssm (h, p, n) per Mamba layer, and one length counter per attention layer
  const constant = 4 * nMamba * (conv * m.dConv + m.nHeads * m.headDim * m.dState);
  const perToken = 4 * nAttn * 2 * c.attention.kvHeads * c.attention.headDim;
  assert.equal(state.constantBytes, 2 * (constant + 4 * nAttn));
  assert.equal(state.bytesPerToken, 2 * perToken);
  // what is allocated: the constant part plus the caches' capacity
  assert.equal(state.bytes, 2 * (constant + 4 * nAttn) + state.layers[0].k.dim(1) * 2 * perToken);
});

test('a state of one hybrid does not load into another', async () => {
  const a = await loadHybridModel(join(FAMILY, 'granite-hybrid-nope'));
  const b = await loadHybridModel(join(FAMILY, 'granite-hybrid-bf16-sharded'));
  const bytes = await encodeState(a, a.initState(1));
  // the same shapes, other weights: the fingerprint tells them apart
  assert.equal(a.signature, b.signature);
  await assert.rejects(decodeState(b, bytes), /another model of the same shape/);
  const c = await loadHybridModel(join(FAMILY, 'bamba'));
  await assert.rejects(decodeState(c, bytes), (e: Error & { code?: string }) => e.code === 'STATE_MISMATCH');
});

test(`${NAME}: hybridStateBytes (what info reports) agrees with a state of one sequence`, async () => {
  const model = await loadHybridModel(join(FAMILY, NAME));
  const s = model.initState(1);
  assert.deepEqual(hybridStateBytes(model.config), { constantBytes: s.constantBytes, bytesPerToken: s.bytesPerToken });
});

test('prompts of different lengths in one batch of a hybrid: a clear UNSUPPORTED, not a wrong result', async () => {
  const model = await loadHybridModel(join(FAMILY, 'bamba'));
  await assert.rejects(
    prefill(model, [
      [1, 2, 3],
      [4, 5],
    ]),
    (e: Error & { code?: string }) => e.code === 'UNSUPPORTED',
  );
  // equal lengths batch: each row as if alone
  const { last } = await prefill(model, [
    [1, 2, 3],
    [4, 5, 6],
  ]);
  const alone = await prefill(model, [[4, 5, 6]]);
  assert.ok(maxAbsDiff(last[1], alone.last[0]) < 1e-5);
});

test('copyFrom takes another state of the same model whatever its caches have grown to', async () => {
  const model = await loadHybridModel(join(FAMILY, NAME));
  const exp = await readExpected(NAME, FAMILY, 'expected-long.safetensors');
  const ids = exp.ids[0];
  const long = model.initState(1);
  model.forward(model.backend.upload(Int32Array.from(ids), [1, ids.length], 'i32'), { state: long });
  const fresh = model.initState(1);
  fresh.copyFrom(long);
  assert.equal(fresh.position, ids.length);
  const a = await model.stepIds([5], long).readFloat();
  const b = await model.stepIds([5], fresh).readFloat();
  assert.deepEqual(b, a);
});

for (const name of ['granite-hybrid-nope', 'granite-hybrid-rope-dense', 'bamba', 'nemotron-h']) {
  test(`${name}: parameters() names every checkpoint tensor by its own name`, async () => {
    const model = await loadHybridModel(join(FAMILY, name));
    const src = await openWeights(join(FAMILY, name));
    const stored = [...src.entries.keys()].filter((k) => !(k === 'lm_head.weight' && model.config.tieEmbeddings));
    await src.close();
    assert.deepEqual([...model.parameters().keys()].sort(), stored.sort());
  });
}
