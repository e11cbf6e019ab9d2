/**
 * Saved states (Model.saveState / loadState) are untrusted files: they must fit the very model that
 * made them (shape signature and weight fingerprint), their batch and shapes are checked before
 * anything is allocated, and their values must be finite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isMambaError, type ErrorCode } from '../../src/errors.js';
import { memorySource } from '../../src/io/byte-source.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { encodeSafetensors, type TensorToWrite } from '../../src/io/safetensors-writer.js';
import { MAX_STATE_BATCH } from '../../src/models/state-io.js';
import { loadModel } from '../../src/node/load.js';
import type { Model } from '../../src/model.js';
import { makeTinyModel } from '../helpers/tiny-model.js';

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isMambaError(e, code), `expected MambaError ${code}, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

/** The tensors and metadata of a saved state, to rewrite them. */
async function unpack(bytes: Uint8Array): Promise<{ tensors: TensorToWrite[]; meta: Record<string, string> }> {
  const src = await openSafetensors(memorySource(bytes, 'state'));
  const tensors: TensorToWrite[] = [];
  for (const [name, e] of src.entries) {
    const raw = await src.read(name);
    tensors.push({ name, dtype: 'F32', shape: [...e.shape], data: new Float32Array(raw.slice().buffer) });
  }
  const meta = { ...src.metadata };
  await src.close();
  return { tensors, meta };
}

let cached: { a: Model; b: Model; saved: Uint8Array } | undefined;
async function setup(): Promise<{ a: Model; b: Model; saved: Uint8Array }> {
  if (!cached) {
    const a = await loadModel(await makeTinyModel({ seed: 7 }));
    const b = await loadModel(await makeTinyModel({ seed: 8 })); // same config, other weights
    const { state } = await a.feed('the cat sat');
    cached = { a, b, saved: await a.saveState(state) };
  }
  return cached;
}

test('a saved state loads back into its model: same values and position', async () => {
  const { a, saved } = await setup();
  const { state } = await a.feed('the cat sat');
  const back = await a.loadState(saved);
  assert.equal(back.position, state.position);
  for (const [name, t] of state.tensors()) {
    assert.deepEqual(await back.tensors().get(name)!.readFloat(), await t.readFloat(), name);
  }
});

test('a state from another model of identical shapes is STATE_MISMATCH (fingerprint)', async () => {
  const { b, saved } = await setup();
  await rejectsWith(
    b.loadState(saved),
    'STATE_MISMATCH',
    /saved from another model of the same shape \(fingerprint [0-9a-f]{16}, this model's is [0-9a-f]{16}\)/,
  );
});

test('a claimed batch above the limit, or one the tensors lack, fails before the state is allocated', async () => {
  const { a, saved } = await setup();
  const { tensors, meta } = await unpack(saved);
  const t0 = performance.now();
  await rejectsWith(
    a.loadState(encodeSafetensors(tensors, { ...meta, batch: '100000' })),
    'STATE_MISMATCH',
    new RegExp(`batch 100000 is above the limit of ${MAX_STATE_BATCH} sequences`),
  );
  const atLimit = encodeSafetensors(tensors, { ...meta, batch: String(MAX_STATE_BATCH) });
  await rejectsWith(
    a.loadState(atLimit),
    'STATE_MISMATCH',
    new RegExp(`tensor layers\\.0\\.conv has shape \\(1, 32, 4\\), expected \\(${MAX_STATE_BATCH}, 32, 4\\)`),
  );
  assert.ok(performance.now() - t0 < 1000);
  for (const bad of ['1e3', ' 1', '-1', '0', '1.5', 'x']) {
    await rejectsWith(
      a.loadState(encodeSafetensors(tensors, { ...meta, batch: bad })),
      'CORRUPT_FILE',
      /saved state: bad batch/,
    );
  }
});

test('NaN or Inf in a saved state is NON_FINITE, naming the tensor', async () => {
  const { a, saved } = await setup();
  const { tensors, meta } = await unpack(saved);
  (tensors[1].data as Float32Array)[3] = NaN;
  await rejectsWith(
    a.loadState(encodeSafetensors(tensors, meta)),
    'NON_FINITE',
    new RegExp(`saved state tensor ${tensors[1].name.replace(/\./g, '\\.')} holds NaN at flat index 3`),
  );
});

test('a state of the first format (no fingerprint) is refused with what to do', async () => {
  const { a, saved } = await setup();
  const { tensors, meta } = await unpack(saved);
  const { model: _dropped, ...old } = meta;
  await rejectsWith(
    a.loadState(encodeSafetensors(tensors, { ...old, format: 'mamba-ts-state/1' })),
    'STATE_MISMATCH',
    /older mamba-ts \(mamba-ts-state\/1\) without a model fingerprint.*save it again/,
  );
});
