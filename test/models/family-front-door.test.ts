import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModel } from '../../src/node/load.js';
import { FAMILY, maxAbsDiff, readExpected } from '../helpers/fixtures.js';

/** The hybrids through the front door (`loadModel`, as the CLI and the server load models): logits, greedy, info. */
for (const name of ['granite-hybrid-nope', 'nemotron-h']) {
  test(`loadModel runs ${name}: logits and greedy tokens of transformers, state bytes constant and per token`, async () => {
    const exp = await readExpected(name, FAMILY);
    const model = await loadModel(join(FAMILY, name), { env: { HF_HUB_OFFLINE: '1' } });
    const prompt = exp.ids[0];
    const [logits] = await model.logits([prompt]);
    const L = prompt.length * exp.V;
    assert.ok(maxAbsDiff(logits!, exp.logits.subarray(0, L)) < 1e-4);
    const n = exp.greedy[0].length - prompt.length;
    const out: number[] = [];
    for await (const c of model.generate([prompt], { greedy: true, ignoreEos: true, maxNewTokens: n })) {
      out.push(c.token);
    }
    assert.deepEqual([...prompt, ...out], exp.greedy[0]);
    const info = model.info();
    assert.equal(info.architecture, name.startsWith('granite') ? 'granitemoehybrid' : 'nemotron_h');
    assert.ok(info.stateBytesPerSequence > 0 && info.stateBytesPerToken > 0, JSON.stringify(info));
  });
}
