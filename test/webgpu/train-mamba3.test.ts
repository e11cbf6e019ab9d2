import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { backward } from '../../src/autograd/backward.js';
import type { Backend } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import * as F from '../../src/ops/ops.js';
import { AdamW, optimizerStep } from '../../src/train/optimizer.js';
import { readExpected, ROOT } from '../helpers/fixtures.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

// One full training step of a tiny Mamba-3 language model on WebGPU against the CPU backend (as
// test/webgpu/train.test.ts does for Mamba and Mamba-2): the Mamba-3 fixtures' models (2 layers, SISO
// without the output norm; MIMO rank 2 with it), next-token cross-entropy on the fixtures' ids, every
// parameter's gradient, the clipped gradient norm and the weights after one AdamW step.

after(disposeGpu);
const DIR = join(ROOT, 'fixtures', 'mamba3');

for (const name of ['siso', 'mimo-norm'])
  test(`one training step of the Mamba-3 ${name} model on WebGPU matches the CPU: loss, gradients, norm, updated weights`, async (t) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const exp = await readExpected(join('..', 'mamba3', name));
    const [b, l] = [exp.ids.length, exp.ids[0].length];
    const ids = Int32Array.from(exp.ids.flat());
    const targets = new Int32Array(b * l);
    for (let i = 0; i < b; i++) for (let s = 0; s < l; s++) targets[i * l + s] = s + 1 < l ? ids[i * l + s + 1] : -1;
    const sides = [];
    for (const bk of [cpu(), g] as Backend[]) {
      const model = await loadLanguageModel(join(DIR, name), { backend: bk, dtype: 'f32' });
      const params = model.parameters();
      for (const p of params.values()) p.requiresGrad = true;
      const logits = model.forward(bk.upload(ids, [b, l], 'i32'));
      const loss = F.crossEntropy(logits, bk.upload(targets, [b, l], 'i32'));
      backward(loss);
      const lossValue = (await loss.readFloat())[0];
      const grads = new Map<string, Float32Array>();
      for (const [k, p] of params) {
        assert.ok(p.grad, `${name} on ${bk.name}: ${k} has no gradient`);
        grads.set(k, await p.grad.readFloat());
      }
      const opt = new AdamW(params, bk);
      const norm = await optimizerStep(model, opt, 1e-2, 0.5);
      const weights = new Map<string, Float32Array>();
      for (const [k, p] of params) weights.set(k, await p.readFloat());
      sides.push({ loss: lossValue, grads, norm, weights });
    }
    const [c, w] = sides;
    assert.ok(Math.abs(c.loss - w.loss) < 1e-5, `loss ${w.loss} vs cpu ${c.loss}`);
    assert.ok(Math.abs(c.norm - w.norm) < 1e-4 * c.norm, `gradient norm ${w.norm} vs cpu ${c.norm}`);
    let worstG = 0,
      worstGName = '',
      worstW = 0;
    for (const [k, gc] of c.grads) {
      const gw = w.grads.get(k)!;
      assert.equal(gw.length, gc.length, k);
      for (let i = 0; i < gc.length; i++) {
        const e = Math.abs(gc[i] - gw[i]);
        if (e > worstG) [worstG, worstGName] = [e, k];
      }
      const pc = c.weights.get(k)!,
        pw = w.weights.get(k)!;
      for (let i = 0; i < pc.length; i++) worstW = Math.max(worstW, Math.abs(pc[i] - pw[i]));
    }
    t.diagnostic(
      `${name}: loss ${c.loss.toFixed(6)}, norm ${c.norm.toFixed(6)}; worst gradient difference ${worstG.toExponential(2)} (${worstGName}), worst weight difference ${worstW.toExponential(2)}`,
    );
    assert.ok(c.grads.size > 0);
    assert.ok(worstG < 1e-4, `gradients differ by up to ${worstG} (${worstGName})`);
    assert.ok(worstW < 1e-4, `updated weights differ by up to ${worstW}`);
  });
