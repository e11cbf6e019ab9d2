import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { backward } from '../../src/autograd/backward.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { loadAnyLanguageModel } from '../../src/models/node/load-checkpoint.js';
import * as F from '../../src/ops/ops.js';
import { checkTrainable } from '../../src/train/model-io.js';
import { unfoldMultipliers } from '../../src/train/unfold-multipliers.js';
import { FAMILY } from '../helpers/fixtures.js';
import { gradFixture, TRAINED_HYBRIDS } from '../helpers/hybrid-grad.js';

/**
 * PyTorch gradient parity of the hybrids (fixtures/hybrid-grad, made by
 * scripts/fixtures/make_hybrid_grad_fixtures.py from the tiny random checkpoints of fixtures/family):
 * transformers ran `loss = model(ids, labels=ids).loss; loss.backward()` on ids (2, 13) in train mode
 * (float32, eager attention, the fixtures' per-group gated norm and unclamped dt). Here the same loss is
 * the cross-entropy over all positions with the last position's target ignored (-1). The loss must match
 * within 1e-5 and every parameter's gradient within 1e-4 of its tensor's largest gradient (at least 1e-6
 * absolute); the worst errors are printed. A parameter with no gradient in PyTorch is a buffer there
 * (Nemotron-H's e_score_correction_bias, which moves the choice of experts only): it must get none here.
 */
for (const name of TRAINED_HYBRIDS)
  test(`${name}: loss and every parameter gradient match PyTorch (transformers) within 1e-4`, async () => {
    const fx = await gradFixture(name);
    const bk = cpu();
    const model = await loadAnyLanguageModel(join(FAMILY, name), { backend: bk, dtype: 'f32' });
    checkTrainable(model);
    unfoldMultipliers(model);
    const params = model.parameters();
    for (const p of params.values()) p.requiresGrad = true;
    const logits = model.forward(bk.upload(fx.ids, [fx.b, fx.l], 'i32'));
    const loss = F.crossEntropy(logits, bk.upload(fx.targets, [fx.b, fx.l], 'i32'));
    const lossWant = (await fx.f32('loss'))[0];
    const lossGot = bk.readSync(loss)[0];
    assert.ok(Math.abs(lossGot - lossWant) < 1e-5, `loss ${lossGot} vs PyTorch ${lossWant}`);
    backward(loss);

    let worst = 0,
      worstName = '',
      compared = 0;
    for (const [pname, p] of params) {
      if (!fx.has(`grad.${pname}`)) {
        assert.match(pname, /e_score_correction_bias$/, `${pname}: not in the fixture`);
        assert.equal(p.grad, undefined, `${pname}: a buffer in PyTorch, it must get no gradient`);
        continue;
      }
      const want = await fx.f32(`grad.${pname}`);
      assert.ok(p.grad, `${pname}: no gradient`);
      const got = bk.readSync(p.grad) as Float32Array;
      assert.equal(got.length, want.length, pname);
      let err = 0,
        scale = 0;
      for (let i = 0; i < got.length; i++) {
        err = Math.max(err, Math.abs(got[i] - want[i]));
        scale = Math.max(scale, Math.abs(want[i]));
      }
      const rel = err / Math.max(scale, 1e-2);
      if (rel > worst) {
        worst = rel;
        worstName = pname;
      }
      assert.ok(rel < 1e-4, `${pname}: max abs error ${err} (largest gradient ${scale})`);
      compared++;
    }
    assert.equal(compared, fx.exp.entries.size - 2, 'every gradient of the fixture was compared');
    console.log(
      `# ${name}: loss |diff| ${Math.abs(lossGot - lossWant).toExponential(2)}; worst gradient error relative to its tensor's largest ${worst.toExponential(2)} (${worstName})`,
    );
    await fx.exp.close();
  });
