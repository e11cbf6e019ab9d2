import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { backward } from '../../src/autograd/backward.js';
import type { Backend } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { loadAnyLanguageModel } from '../../src/models/node/load-checkpoint.js';
import * as F from '../../src/ops/ops.js';
import { checkTrainable } from '../../src/train/model-io.js';
import { unfoldMultipliers } from '../../src/train/unfold-multipliers.js';
import { AdamW, ADAMW_DEFAULTS, optimizerStep } from '../../src/train/optimizer.js';
import { gradFixture, TRAINED_HYBRIDS } from '../helpers/hybrid-grad.js';
import { FAMILY } from '../helpers/fixtures.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

// Training the hybrids on WebGPU: the PyTorch gradient fixtures of fixtures/hybrid-grad (as
// test/autograd/hybrid-grad.test.ts on the CPU; the MoE runs its sparse form here, each expert's products over
// its routed (token, slot) pairs only, ops/moe-sparse.ts), and one full optimiser step of each against the CPU backend.

after(disposeGpu);

/** Loss and gradients of the fixture's model on `bk` (parameters by name). */
async function gradients(bk: Backend, name: string, fx: Awaited<ReturnType<typeof gradFixture>>) {
  const model = await loadAnyLanguageModel(join(FAMILY, name), { backend: bk, dtype: 'f32' });
  checkTrainable(model);
  unfoldMultipliers(model);
  const params = model.parameters();
  for (const p of params.values()) p.requiresGrad = true;
  const logits = model.forward(bk.upload(fx.ids, [fx.b, fx.l], 'i32'));
  const loss = F.crossEntropy(logits, bk.upload(fx.targets, [fx.b, fx.l], 'i32'));
  backward(loss);
  return { model, params, loss: (await loss.readFloat())[0] };
}

for (const name of TRAINED_HYBRIDS)
  test(`${name} on WebGPU: loss and every parameter gradient match PyTorch within 1e-4`, async (t) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const fx = await gradFixture(name);
    const { params, loss } = await gradients(g, name, fx);
    const lossWant = (await fx.f32('loss'))[0];
    assert.ok(Math.abs(loss - lossWant) < 1e-5, `loss ${loss} vs PyTorch ${lossWant}`);
    let worst = 0,
      worstName = '';
    for (const [pname, p] of params) {
      if (!fx.has(`grad.${pname}`)) {
        assert.equal(p.grad, undefined, `${pname}: a buffer in PyTorch, it must get no gradient`);
        continue;
      }
      const want = await fx.f32(`grad.${pname}`);
      assert.ok(p.grad, `${pname}: no gradient`);
      const got = await p.grad.readFloat();
      assert.equal(got.length, want.length, pname);
      let err = 0,
        scale = 0;
      for (let i = 0; i < got.length; i++) {
        err = Math.max(err, Math.abs(got[i] - want[i]));
        scale = Math.max(scale, Math.abs(want[i]));
      }
      const rel = err / Math.max(scale, 1e-2);
      if (rel > worst) [worst, worstName] = [rel, pname];
      assert.ok(rel < 1e-4, `${pname}: max abs error ${err} (largest gradient ${scale})`);
    }
    t.diagnostic(
      `${name} on WebGPU: loss |diff| ${Math.abs(loss - lossWant).toExponential(2)}; worst gradient error relative to its tensor's largest ${worst.toExponential(2)} (${worstName})`,
    );
    await fx.exp.close();
  });

/**
 * One optimiser step on each backend. Gradients agree within 2e-4 of each tensor's largest (each backend is
 * within 1e-4 of PyTorch, above: Zamba2's small dt_bias gradients come within 8e-5 of it on both, from
 * either side). Adam's first step moves a weight by lr·g/(|g| + eps): for an element whose gradient is
 * about as small as the backends' difference in it (1e-9 against gradients of 1), that ratio, so the
 * step, is not determined by the gradient; the updated weights are compared where |g| is at least 1e-3 of
 * its tensor's largest (within 1e-4), and everywhere they must have moved by at most lr (Adam's bound), plus the weight decay's lr·wd·|w|.
 */
for (const name of TRAINED_HYBRIDS)
  test(`one training step of ${name} on WebGPU matches the CPU: gradients within 2e-4, norm, updated weights`, async (t) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const fx = await gradFixture(name);
    const lr = 1e-2;
    const sides = [];
    for (const bk of [cpu(), g] as Backend[]) {
      const r = await gradients(bk, name, fx);
      const grads = new Map<string, Float32Array>();
      for (const [pname, p] of r.params) if (p.grad) grads.set(pname, await p.grad.readFloat());
      const before = new Map<string, Float32Array>();
      for (const [pname, p] of r.params) before.set(pname, await p.readFloat());
      const opt = new AdamW(r.params, bk);
      const norm = await optimizerStep(r.model, opt, lr, 0.5); // clipped: the norm is above 0.5
      const weights = new Map<string, Float32Array>();
      for (const [pname, p] of r.params) weights.set(pname, await p.readFloat());
      sides.push({ loss: r.loss, grads, norm, before, weights });
    }
    const [c, w] = sides;
    assert.ok(Math.abs(c.loss - w.loss) < 1e-5, `loss ${w.loss} vs cpu ${c.loss}`);
    assert.ok(c.norm > 0.5, `the fixture's gradient norm ${c.norm} is clipped`);
    assert.ok(Math.abs(c.norm - w.norm) < 1e-4 * c.norm, `gradient norm ${w.norm} vs cpu ${c.norm}`);
    assert.deepEqual([...w.grads.keys()], [...c.grads.keys()]);
    let worstG = 0,
      worstW = 0,
      compared = 0;
    for (const [pname, gc] of c.grads) {
      const gw = w.grads.get(pname)!;
      const scale = Math.max(1e-2, ...gc.map(Math.abs));
      const pc = c.weights.get(pname)!,
        pw = w.weights.get(pname)!,
        p0 = c.before.get(pname)!;
      for (let i = 0; i < gc.length; i++) {
        worstG = Math.max(worstG, Math.abs(gc[i] - gw[i]) / scale);
        const bound = lr * (1 + ADAMW_DEFAULTS.weightDecay * Math.abs(p0[i])) * 1.001 + 1e-6;
        assert.ok(Math.abs(pw[i] - p0[i]) <= bound, `${pname}[${i}] moved by ${pw[i] - p0[i]}`);
        if (Math.abs(gc[i]) < 1e-3 * scale) continue;
        worstW = Math.max(worstW, Math.abs(pc[i] - pw[i]));
        compared++;
      }
    }
    t.diagnostic(
      `${name}, one step: worst gradient difference relative to its tensor's largest ${worstG.toExponential(2)}, worst weight difference ${worstW.toExponential(2)} (${compared} weights compared)`,
    );
    assert.ok(worstG < 2e-4, `gradients differ by up to ${worstG} of their tensor's largest`);
    assert.ok(worstW < 1e-4, `updated weights differ by up to ${worstW}`);
    await fx.exp.close();
  });
