import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { backward } from '../../src/autograd/backward.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { openSafetensorsFile } from '../../src/io/node/safetensors-file.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import * as F from '../../src/ops/ops.js';
import { PARITY } from '../helpers/fixtures.js';

/**
 * PyTorch gradient parity (fixtures/parity/mamba1-grad and mamba2-grad, made by
 * scripts/fixtures/make_fixtures.py): transformers' MambaForCausalLM (2 layers, d 24, e 48, n 5, tied
 * embeddings, conv bias), and Mamba2ForCausalLM (2 layers, d 24, 6 heads of 8, 1 group, n 6, chunks
 * of 5 over 13 tokens, tied embeddings, conv bias) ran
 * `loss = model(ids, labels=ids).loss; loss.backward()` on ids (2, 13), i.e. the mean cross-entropy
 * of logits[:, :-1] against ids[:, 1:]. Here the same loss is the cross-entropy over all positions
 * with the last position's target ignored (-1). Every parameter's gradient must match within 1e-4
 * absolute (the gradients are O(0.01..1)); the measured worst error is printed.
 */
for (const fixture of ['mamba1-grad', 'mamba2-grad'])
  test(`${fixture}: loss and every parameter gradient match PyTorch within 1e-4`, async () => {
    const dir = join(PARITY, fixture);
    const model = await loadLanguageModel(dir);
    const exp = await openSafetensorsFile(join(dir, 'expected.safetensors'));
    const f32 = async (name: string): Promise<Float32Array> => {
      const b = await exp.read(name);
      return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    };
    const idsBytes = await exp.read('input_ids');
    const ids = new Int32Array(idsBytes.buffer.slice(idsBytes.byteOffset, idsBytes.byteOffset + idsBytes.byteLength));
    const [b, l] = exp.entries.get('input_ids')!.shape as [number, number];
    const targets = new Int32Array(b * l);
    for (let i = 0; i < b; i++) for (let t = 0; t < l; t++) targets[i * l + t] = t + 1 < l ? ids[i * l + t + 1] : -1;

    const params = model.parameters();
    for (const p of params.values()) p.requiresGrad = true;
    const bk = cpu();
    const logits = model.forward(bk.upload(ids, [b, l], 'i32'));
    const loss = F.crossEntropy(logits, bk.upload(targets, [b, l], 'i32'));
    const lossWant = (await f32('loss'))[0];
    const lossGot = bk.readSync(loss)[0];
    assert.ok(Math.abs(lossGot - lossWant) < 1e-5, `loss ${lossGot} vs PyTorch ${lossWant}`);
    backward(loss);

    let worst = 0,
      worstName = '',
      worstRel = 0;
    for (const [name, p] of params) {
      const want = await f32(`grad.${name}`);
      assert.ok(p.grad, `${name}: no gradient`);
      const got = bk.readSync(p.grad) as Float32Array;
      assert.equal(got.length, want.length, name);
      let err = 0,
        scale = 0;
      for (let i = 0; i < got.length; i++) {
        err = Math.max(err, Math.abs(got[i] - want[i]));
        scale = Math.max(scale, Math.abs(want[i]));
      }
      if (err > worst) {
        worst = err;
        worstName = name;
      }
      worstRel = Math.max(worstRel, err / scale);
      assert.ok(err < 1e-4, `${name}: max abs error ${err} (largest gradient ${scale})`);
    }
    assert.equal(params.size, exp.entries.size - 2, 'every parameter of the fixture was compared');
    console.log(
      `# ${fixture}: loss |diff| ${Math.abs(lossGot - lossWant).toExponential(2)}; worst gradient max-abs error ${worst.toExponential(2)} (${worstName}); worst error relative to its tensor's largest gradient ${worstRel.toExponential(2)}`,
    );
    await exp.close();
  });
