import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backward } from '../../src/autograd/backward.js';
import type { Backend } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { openSafetensorsFile } from '../../src/io/node/safetensors-file.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import * as F from '../../src/ops/ops.js';
import { AdamW, optimizerStep } from '../../src/train/optimizer.js';
import { PARITY, ROOT } from '../helpers/fixtures.js';
import { smallText, tempDir, TINY_CONFIG } from '../train/helpers.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

// Training on WebGPU: the PyTorch gradient fixtures of Mamba and Mamba-2 (as test/autograd/mamba-grad.test.ts
// on the CPU), and one full optimiser step of each against the CPU backend.

after(disposeGpu);
const FIXTURES = ['mamba1-grad', 'mamba2-grad'];
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');

async function fixture(DIR: string): Promise<{
  dir: string;
  ids: Int32Array;
  targets: Int32Array;
  b: number;
  l: number;
  f32: (name: string) => Promise<Float32Array>;
  close: () => Promise<void>;
}> {
  const exp = await openSafetensorsFile(join(DIR, 'expected.safetensors'));
  const f32 = async (name: string): Promise<Float32Array> => {
    const b = await exp.read(name);
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  };
  const idsBytes = await exp.read('input_ids');
  const ids = new Int32Array(idsBytes.buffer.slice(idsBytes.byteOffset, idsBytes.byteOffset + idsBytes.byteLength));
  const [b, l] = exp.entries.get('input_ids')!.shape as [number, number];
  const targets = new Int32Array(b * l);
  for (let i = 0; i < b; i++) for (let t = 0; t < l; t++) targets[i * l + t] = t + 1 < l ? ids[i * l + t + 1] : -1;
  return { dir: DIR, ids, targets, b, l, f32, close: () => exp.close() };
}

/** Loss and gradients of the fixture's model on `bk` (parameters by name, read back). */
async function gradients(bk: Backend, fx: Awaited<ReturnType<typeof fixture>>) {
  const model = await loadLanguageModel(fx.dir, { backend: bk, dtype: 'f32' });
  const params = model.parameters();
  for (const p of params.values()) p.requiresGrad = true;
  const logits = model.forward(bk.upload(fx.ids, [fx.b, fx.l], 'i32'));
  const loss = F.crossEntropy(logits, bk.upload(fx.targets, [fx.b, fx.l], 'i32'));
  backward(loss);
  const lossValue = (await loss.readFloat())[0];
  return { model, params, loss: lossValue };
}

for (const name of FIXTURES)
  test(`${name} on WebGPU: loss and every parameter gradient match PyTorch within 1e-4`, async (t) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const fx = await fixture(join(PARITY, name));
    const { params, loss } = await gradients(g, fx);
    const lossWant = (await fx.f32('loss'))[0];
    assert.ok(Math.abs(loss - lossWant) < 1e-5, `loss ${loss} vs PyTorch ${lossWant}`);
    let worst = 0,
      worstName = '';
    for (const [name, p] of params) {
      const want = await fx.f32(`grad.${name}`);
      assert.ok(p.grad, `${name}: no gradient`);
      const got = await p.grad.readFloat();
      assert.equal(got.length, want.length, name);
      let err = 0;
      for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
      if (err > worst) [worst, worstName] = [err, name];
      assert.ok(err < 1e-4, `${name}: max abs error ${err}`);
    }
    t.diagnostic(
      `${name} on WebGPU: loss |diff| ${Math.abs(loss - lossWant).toExponential(2)}; worst gradient error ${worst.toExponential(2)} (${worstName})`,
    );
    await fx.close();
  });

for (const name of FIXTURES)
  test(`one training step of ${name}'s model on WebGPU matches the CPU: gradients within 1e-4, norm, updated weights`, async (t) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const fx = await fixture(join(PARITY, name));
    const sides = [];
    for (const bk of [cpu(), g] as Backend[]) {
      const r = await gradients(bk, fx);
      const grads = new Map<string, Float32Array>();
      for (const [name, p] of r.params) grads.set(name, await p.grad!.readFloat());
      const opt = new AdamW(r.params, bk);
      const norm = await optimizerStep(r.model, opt, 1e-2, 0.5); // clipped: the norm is above 0.5
      const weights = new Map<string, Float32Array>();
      for (const [name, p] of r.params) weights.set(name, await p.readFloat());
      sides.push({ loss: r.loss, grads, norm, weights });
    }
    const [c, w] = sides;
    assert.ok(Math.abs(c.loss - w.loss) < 1e-5, `loss ${w.loss} vs cpu ${c.loss}`);
    assert.ok(c.norm > 0.5, `the fixture's gradient norm ${c.norm} is clipped`);
    assert.ok(Math.abs(c.norm - w.norm) < 1e-4 * c.norm, `gradient norm ${w.norm} vs cpu ${c.norm}`);
    let worstG = 0,
      worstW = 0;
    for (const [name, gc] of c.grads) {
      const gw = w.grads.get(name)!;
      for (let i = 0; i < gc.length; i++) worstG = Math.max(worstG, Math.abs(gc[i] - gw[i]));
      const pc = c.weights.get(name)!,
        pw = w.weights.get(name)!;
      for (let i = 0; i < pc.length; i++) worstW = Math.max(worstW, Math.abs(pc[i] - pw[i]));
    }
    t.diagnostic(
      `one step: worst gradient difference ${worstG.toExponential(2)}, worst weight difference ${worstW.toExponential(2)}`,
    );
    assert.ok(worstG < 1e-4, `gradients differ by up to ${worstG}`);
    assert.ok(worstW < 1e-4, `updated weights differ by up to ${worstW}`);
    await fx.close();
  });

test('mamba-ts train --backend webgpu: the same losses and gradient norms as the CPU run', async (t) => {
  const g = await requireAdapter(t); // (sets VK_ICD_FILENAMES for SwiftShader where needed: the child inherits it)
  if (!g) return;
  const root = tempDir();
  const config = join(root, 'tiny.json');
  writeFileSync(config, JSON.stringify(TINY_CONFIG));
  const data = smallText(root, 2);
  const history = (backend: string) => {
    const out = join(root, backend);
    const args = ['train', '--data', data, '--config', config, '--steps', '2', '--out', out, '--backend', backend];
    const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const state = JSON.parse(readFileSync(join(out, 'trainer_state.json'), 'utf8')) as {
      history: { loss: number; gradNorm: number }[];
    };
    return state.history;
  };
  const c = history('cpu'),
    w = history('webgpu');
  assert.equal(w.length, 2);
  for (let i = 0; i < c.length; i++) {
    assert.ok(Math.abs(w[i].loss - c[i].loss) < 1e-4 * c[i].loss, `step ${i + 1}: loss ${w[i].loss} vs ${c[i].loss}`);
    const gn = Math.abs(w[i].gradNorm - c[i].gradNorm);
    assert.ok(gn < 1e-4 * c[i].gradNorm, `step ${i + 1}: grad norm ${w[i].gradNorm} vs ${c[i].gradNorm}`);
  }
});

test('mamba-ts tasks run --backend webgpu (Mamba, attention, Mamba-3 SISO and MIMO): the same training losses and accuracies as the CPU', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const root = tempDir();
  const run = (backend: string, mixer: string, out: string) =>
    spawnSync(
      process.execPath,
      [MAIN, 'tasks', 'run', 'induction-heads', '--mixer', mixer, '--seq-len', '8', '--eval-lengths', '8,2^4']
        .concat(['--length-examples', '4', '--d-model', '8', '--layers', '1', '--d-state', '4', '--steps', '3'])
        .concat([
          '--batch',
          '4',
          '--eval-examples',
          '8',
          '--eval-every',
          '3',
          '--quiet',
          '--out',
          out,
          '--backend',
          backend,
        ]),
      { encoding: 'utf8' },
    );
  for (const mixer of ['mamba', 'attention', 'mamba3', 'mamba3-mimo']) {
    const results = [];
    for (const backend of ['cpu', 'webgpu']) {
      const out = join(root, `${mixer}-${backend}.json`);
      const r = run(backend, mixer, out);
      assert.equal(r.status, 0, r.stderr);
      results.push(
        JSON.parse(readFileSync(out, 'utf8')) as {
          log: { loss: [number, number][] };
          accuracy: { token: number };
          lengths: { accuracy: number }[];
        },
      );
    }
    const [c, w] = results;
    assert.equal(w.log.loss.length, 3);
    for (let i = 0; i < c.log.loss.length; i++)
      assert.ok(
        Math.abs(w.log.loss[i][1] - c.log.loss[i][1]) < 1e-4,
        `${mixer} step ${i + 1}: ${w.log.loss[i]} vs ${c.log.loss[i]}`,
      );
    assert.equal(w.accuracy.token, c.accuracy.token);
    assert.deepEqual(
      w.lengths.map((x) => x.accuracy),
      c.lengths.map((x) => x.accuracy),
    );
  }
});
