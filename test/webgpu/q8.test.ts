import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { isMambaError } from '../../src/errors.js';
import { fixtureModel } from '../helpers/fixture-model.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

after(disposeGpu);

/** The error `--backend webgpu --dtype q8` must give: UNSUPPORTED, naming the weight dtypes that work. */
function noQ8(e: unknown): boolean {
  assert.ok(isMambaError(e, 'UNSUPPORTED'), `expected an UNSUPPORTED MambaError, got ${String(e)}`);
  assert.match((e as Error).message, /^q8 weights are not supported on WebGPU; use f32, f16 or bf16/);
  return true;
}

test('q8 weights on WebGPU: refused at upload and allocation, and so when a model is built with them', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  assert.throws(() => g.upload(new Float32Array(64), [2, 32], 'q8'), noQ8);
  assert.throws(() => g.alloc([2, 32], 'q8'), noQ8);
  await assert.rejects(fixtureModel('mamba1-tied', g, 'q8'), noQ8);
  // the backend still works afterwards
  const x = g.upload(Float32Array.of(1, 2, 3), [3]);
  assert.deepEqual([...(await x.readFloat())], [1, 2, 3]);
});
