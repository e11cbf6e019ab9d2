import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { traceModel } from '../../src/inspect/trace.js';
import { Mamba2Mixer } from '../../src/mixers/mamba2.js';
import { loadHybridModel } from '../../src/models/node/load-checkpoint.js';
import { FAMILY, readExpected } from '../helpers/fixtures.js';

/**
 * Tracing a Mamba-2 hybrid (the Bamba and Nemotron-H fixtures): the Mamba-2 blocks are traced, each
 * under its block index, the attention and MLP blocks left out; each traced block's state norm at the
 * last token is the norm of the state the model itself carries.
 */
for (const name of ['bamba', 'nemotron-h']) {
  test(`trace (hybrid ${name}): the Mamba-2 blocks by index, state norms of the carried state`, async () => {
    const bk = cpu();
    const lm = await loadHybridModel(join(FAMILY, name), { backend: bk, dtype: 'f32' });
    const exp = await readExpected(name, FAMILY);
    const ids = Array.from(exp.ids[0]);
    const tr = await traceModel(lm, ids);
    const ssmBlocks = lm.blocks.flatMap((b, i) => (b.mixer instanceof Mamba2Mixer ? [i] : []));
    assert.ok(ssmBlocks.length > 0 && ssmBlocks.length < lm.blocks.length, `${name} is a hybrid`);
    assert.deepEqual(
      tr.layers.map((L) => L.layer),
      ssmBlocks,
    );
    assert.equal(tr.kind, 'mamba2');
    const state = lm.initState(1);
    lm.forward(bk.upload(Int32Array.from(ids), [1, ids.length], 'i32'), { state, lastOnly: true });
    for (const L of tr.layers) {
      const h = await state.layers[L.layer].ssm.readFloat();
      const want = Math.sqrt(h.reduce((s, v) => s + v * v, 0));
      const got = L.stateNorm[ids.length - 1];
      assert.ok(Math.abs(got - want) <= 1e-4 * want + 1e-6, `block ${L.layer}: trace ${got} vs state ${want}`);
      assert.ok(L.delta.every((v) => v > 0 && Number.isFinite(v)));
    }
    state.dispose();
  });
}
