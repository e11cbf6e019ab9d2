import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { join } from 'node:path';
import { loadHybridModel } from '../../src/models/node/load-checkpoint.js';
import { FAMILY } from '../helpers/fixtures.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

/**
 * The Mamba-2 + attention hybrids do not run on WebGPU yet (no attention, rotary or MoE routing there):
 * loading one onto it is a clear UNSUPPORTED naming the backend and what it lacks, never a wrong result.
 */
after(disposeGpu);

for (const name of ['granite-hybrid-nope', 'bamba', 'nemotron-h']) {
  test(`${name} on WebGPU: a clear UNSUPPORTED, before any weight is uploaded`, async (t) => {
    const gpu = await requireAdapter(t);
    if (!gpu) return;
    await assert.rejects(
      loadHybridModel(join(FAMILY, name), { backend: gpu }),
      (e: Error & { code?: string }) =>
        e.code === 'UNSUPPORTED' && /cpu backend only/.test(e.message) && e.message.includes(gpu.name),
    );
  });
}
