import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { loadHybridModel } from '../../src/models/node/load-checkpoint.js';
import { encodeState } from '../../src/models/state-io.js';
import { batchedVsAlone } from '../helpers/batched-rows.js';
import { FAMILY } from '../helpers/fixtures.js';

/**
 * The hybrids' batched decode step with rows at different context lengths (the server's decode batch):
 * each row writes, rotates and attends at its own position, so a batch of rows equals each row stepped
 * alone, through the KV caches' growth, for every attention variant of the fixtures: NoPE (Granite),
 * RoPE with GQA (Granite dense, Falcon-H1, whose attention runs beside its Mamba layer), partial rotary
 * (Bamba), the shared attention of Zamba2, Jamba and Nemotron-H. A row taken out of the batch (a prompt
 * cache snapshot) continues like its reference. The batch's products run at b rows where the rows alone
 * run at one (another summation order in the products), hence a tolerance rather than equality.
 */
const FIXTURES = [
  'granite-hybrid-nope',
  'granite-hybrid-rope-dense',
  'falcon-h1',
  'bamba',
  'zamba2',
  'jamba',
  'nemotron-h',
];

const PROMPTS = [
  [5, 9, 2],
  [7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4],
  [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9], // 15: a cache of 16, grown in the batch
];

for (const name of FIXTURES) {
  test(`${name}: a batched step of rows at different lengths equals each row stepped alone (cpu)`, async (t) => {
    const model = await loadHybridModel(join(FAMILY, name));
    const steps = 20; // row 2 goes from 15 to 35 positions: past the caches' 16 and 32
    const { worst, positions, leftWorst } = await batchedVsAlone(model, PROMPTS, steps);
    t.diagnostic(`batch vs alone ${worst.toExponential(2)}, row taken out ${leftWorst.toExponential(2)}`);
    assert.ok(worst < 1e-5, `batched step vs each row alone: max abs logits difference ${worst}`);
    assert.equal(leftWorst, 0, 'a row taken out of the batch continues exactly like its own state');
    assert.deepEqual(
      positions,
      PROMPTS.map((p) => p.length + steps),
    );
  });
}

test('the same on the TypeScript reference kernels (granite with RoPE, falcon-h1)', async () => {
  const ts = new CpuBackend({ kernels: 'ts' });
  for (const name of ['granite-hybrid-rope-dense', 'falcon-h1']) {
    const model = await loadHybridModel(join(FAMILY, name), { backend: ts });
    const { worst, leftWorst } = await batchedVsAlone(model, PROMPTS, 20);
    assert.ok(worst < 1e-5, `${name}: batched step vs each row alone: max abs logits difference ${worst}`);
    assert.equal(leftWorst, 0, `${name}: a row taken out of the batch continues exactly like its own state`);
  }
});

test('a state whose rows are at different positions refuses forward', async () => {
  const model = await loadHybridModel(join(FAMILY, 'granite-hybrid-nope'));
  const s = model.initState(2);
  s.rowPositions = [0, 0];
  const ids = model.backend.upload(Int32Array.of(1, 2), [2, 1], 'i32');
  assert.throws(
    () => model.forward(ids, { state: s }),
    (e: Error & { code?: string }) => e.code === 'UNSUPPORTED',
  );
});

test('a state whose rows are at different positions is not saved as one position', async () => {
  const model = await loadHybridModel(join(FAMILY, 'granite-hybrid-nope'));
  const s = model.initState(2);
  s.rowPositions = [0, 0];
  await assert.rejects(encodeState(model, s), (e: Error & { code?: string }) => e.code === 'UNSUPPORTED');
});

test('a step with a position per row checks them against the cache counters', async () => {
  const model = await loadHybridModel(join(FAMILY, 'granite-hybrid-nope'));
  const s = model.initState(2);
  s.rowPositions = [0, 3]; // the counters say 0, 0
  assert.throws(() => model.stepIds([1, 2], s), /row 1 holds 0 positions, the state says 3/);
});
