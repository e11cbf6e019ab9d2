import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { join } from 'node:path';
import { loadHybridModel } from '../../src/models/node/load-checkpoint.js';
import { decodeState, encodeState } from '../../src/models/state-io.js';
import { FAMILY, maxAbsDiff, readExpected } from '../helpers/fixtures.js';
import { logitsOf } from '../helpers/parity.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

/**
 * Jamba's state on WebGPU (SwiftShader in CI): Mamba-1 conv and SSM states beside an attention KV cache, as a
 * value. Saved and restored, cloned, or copied, it continues exactly like the original (past the KV cache's
 * growth at 16 tokens), and a state saved on the GPU continues on the CPU within 1e-4 of the GPU's steps.
 */
after(disposeGpu);

test('jamba on WebGPU: a saved and restored state, a clone and a copy continue like the original; it restores on the CPU', async (t) => {
  const gpu = await requireAdapter(t);
  if (!gpu) return;
  const model = await loadHybridModel(join(FAMILY, 'jamba'), { backend: gpu });
  const onCpu = await loadHybridModel(join(FAMILY, 'jamba'));
  const exp = await readExpected('jamba', FAMILY, 'expected-long.safetensors');
  const ids = exp.ids[0];
  const V = model.vocabSize;
  const whole = await logitsOf(model, [ids]);
  const cut = 13;
  const state = model.initState(1);
  model.forward(gpu.upload(Int32Array.from(ids.slice(0, cut)), [1, cut], 'i32'), { state });
  const bytes = await encodeState(model, state);
  const restored = await decodeState(model, bytes);
  const clone = state.clone();
  const copy = model.initState(1);
  copy.copyFrom(state);
  const cpuState = await decodeState(onCpu, bytes);
  assert.equal(cpuState.position, cut);
  for (let i = cut; i < ids.length; i++) {
    const a = await model.stepIds([ids[i]], state).readFloat();
    assert.deepEqual(await model.stepIds([ids[i]], restored).readFloat(), a, `restored state at position ${i}`);
    assert.deepEqual(await model.stepIds([ids[i]], clone).readFloat(), a, `cloned state at position ${i}`);
    assert.deepEqual(await model.stepIds([ids[i]], copy).readFloat(), a, `copied state at position ${i}`);
    const err = maxAbsDiff(a, whole.subarray(i * V, (i + 1) * V));
    assert.ok(err < 1e-4, `position ${i}: step vs parallel ${err}`);
    const c = await onCpu.stepIds([ids[i]], cpuState).readFloat();
    const errCpu = maxAbsDiff(c, a);
    assert.ok(errCpu < 1e-4, `position ${i}: the CPU's step from the GPU's state vs the GPU's step ${errCpu}`);
  }
  // 17 positions outgrew the cache's first capacity (16): a grown state saves and loads
  const again = await decodeState(model, await encodeState(model, state));
  assert.deepEqual(await model.stepIds([3], again).readFloat(), await model.stepIds([3], state).readFloat());
  for (const s of [state, restored, clone, copy, again]) s.dispose();
});
