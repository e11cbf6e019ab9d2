import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { AdamW, clipScale, decays } from '../../src/train/optimizer.js';
import { learningRate } from '../../src/train/schedule.js';

/** AdamW against torch.optim.AdamW's update written out by hand, the decay groups, clipping, the schedule. */
const bk = cpu();

/** torch.optim.AdamW (single tensor), in f64. */
function reference(
  p: number,
  g: number[],
  o: { lr: number; b1: number; b2: number; eps: number; wd: number; scale?: number },
): number {
  let m = 0,
    v = 0;
  g.forEach((gi, i) => {
    const t = i + 1,
      x = gi * (o.scale ?? 1);
    p *= 1 - o.lr * o.wd;
    m = o.b1 * m + (1 - o.b1) * x;
    v = o.b2 * v + (1 - o.b2) * x * x;
    p -= ((o.lr / (1 - o.b1 ** t)) * m) / (Math.sqrt(v) / Math.sqrt(1 - o.b2 ** t) + o.eps);
  });
  return p;
}

test('adamwStep: one step by hand (p 1, g 0.5, lr 0.1, wd 0.01, betas 0.9/0.999) gives 0.899', () => {
  const p = bk.upload(Float32Array.of(1), [1]),
    g = bk.upload(Float32Array.of(0.5), [1]);
  const m = bk.zeros([1]),
    v = bk.zeros([1]);
  bk.adamwStep(p, g, m, v, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 });
  // decay: 1 * (1 - 0.001) = 0.999; m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25; update 0.1 * 0.5 / 0.5 = 0.1
  assert.ok(Math.abs(bk.readSync(p)[0] - 0.899) < 1e-6, String(bk.readSync(p)[0]));
  assert.ok(Math.abs(bk.readSync(m)[0] - 0.05) < 1e-7);
  assert.ok(Math.abs(bk.readSync(v)[0] - 0.00025) < 1e-9);
});

test('adamwStep: five steps on a (3, 7) tensor match the PyTorch formula, with gradient scaling', () => {
  const rows = 3,
    cols = 7,
    steps = 5;
  const p0 = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i + 1));
  const grads = Array.from({ length: steps }, (_, s) =>
    Float32Array.from({ length: rows * cols }, (_, i) => Math.cos(3 * i + s) * (s + 1)),
  );
  const o = { lr: 3e-3, b1: 0.9, b2: 0.95, eps: 1e-8, wd: 0.1, scale: 0.37 };
  const p = bk.upload(p0, [rows, cols]),
    m = bk.zeros([rows, cols]),
    v = bk.zeros([rows, cols]);
  grads.forEach((g, s) =>
    bk.adamwStep(p, bk.upload(g, [rows, cols]), m, v, {
      lr: o.lr,
      beta1: o.b1,
      beta2: o.b2,
      eps: o.eps,
      weightDecay: o.wd,
      step: s + 1,
      gradScale: o.scale,
    }),
  );
  const got = bk.readSync(p);
  for (let i = 0; i < rows * cols; i++) {
    const want = reference(
      p0[i],
      grads.map((g) => g[i]),
      o,
    );
    assert.ok(Math.abs(got[i] - want) < 1e-6, `element ${i}: ${got[i]} vs ${want}`);
  }
});

test('weight decay: linear and conv weights decay; A_log, D, biases, norms and embeddings do not', () => {
  const yes = [
    'backbone.layers.0.mixer.in_proj.weight',
    'backbone.layers.3.mixer.x_proj.weight',
    'backbone.layers.0.mixer.dt_proj.weight',
    'backbone.layers.0.mixer.out_proj.weight',
    'backbone.layers.0.mixer.conv1d.weight',
    'lm_head.weight',
  ];
  const no = [
    'backbone.layers.0.mixer.A_log',
    'backbone.layers.0.mixer.D',
    'backbone.layers.0.mixer.dt_proj.bias',
    'backbone.layers.0.mixer.conv1d.bias',
    'backbone.layers.0.mixer.in_proj.bias',
    'backbone.layers.0.norm.weight',
    'backbone.norm_f.weight',
    'backbone.embeddings.weight',
  ];
  for (const n of yes) assert.equal(decays(n), true, n);
  for (const n of no) assert.equal(decays(n), false, n);
  // With zero gradients only the decay moves a parameter: p * (1 - lr * wd).
  const params = new Map([
    ['a.in_proj.weight', bk.upload(Float32Array.of(2, 4), [2])],
    ['a.A_log', bk.upload(Float32Array.of(2, 4), [2])],
  ]);
  for (const t of params.values()) t.grad = bk.zeros([2]);
  const opt = new AdamW(params, bk, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.5 });
  opt.update(0.1);
  assert.deepEqual([...bk.readSync(params.get('a.in_proj.weight')!)], [2 * 0.95, 4 * 0.95].map(Math.fround));
  assert.deepEqual([...bk.readSync(params.get('a.A_log')!)], [2, 4]);
});

test('gradNorm is the global L2 norm over every gradient; zeroGrad drops them', async () => {
  const params = new Map([
    ['w', bk.upload(Float32Array.of(0, 0, 0), [3])],
    ['u', bk.upload(Float32Array.of(0, 0, 0, 0), [2, 2])],
    ['none', bk.zeros([2])],
  ]);
  params.get('w')!.grad = bk.upload(Float32Array.of(1, 2, 2), [3]);
  params.get('u')!.grad = bk.upload(Float32Array.of(0, 4, 0, 0), [2, 2]);
  const opt = new AdamW(params, bk);
  assert.ok(Math.abs((await opt.gradNorm()) - 5) < 1e-6); // sqrt(1 + 4 + 4 + 16)
  opt.zeroGrad();
  for (const p of params.values()) assert.equal(p.grad, undefined);
  assert.equal(await opt.gradNorm(), 0);
});

test('clipping: the gradient scale is maxNorm / (norm + 1e-6) above maxNorm, 1 otherwise or with maxNorm 0', () => {
  assert.equal(clipScale(5, 1), 1 / (5 + 1e-6));
  assert.equal(clipScale(0.5, 1), 1);
  assert.equal(clipScale(1, 1), 1);
  assert.equal(clipScale(1e9, 0), 1);
});

test('learning rate: linear warmup, cosine to min_lr, flat after the end', () => {
  const o = { lr: 1e-3, minLr: 1e-4, warmupSteps: 10, totalSteps: 110 };
  assert.equal(learningRate(1, o), 1e-4);
  assert.equal(learningRate(5, o), 5e-4);
  assert.equal(learningRate(10, o), 1e-3);
  assert.ok(Math.abs(learningRate(60, o) - 5.5e-4) < 1e-12); // halfway: (lr + min) / 2
  assert.ok(Math.abs(learningRate(35, o) - (1e-4 + (0.9e-3 * (1 + Math.cos(Math.PI / 4))) / 2)) < 1e-12);
  assert.equal(learningRate(110, o), 1e-4);
  assert.equal(learningRate(500, o), 1e-4);
  assert.ok(
    Math.abs(learningRate(1, { ...o, warmupSteps: 0 }) - (1e-4 + (0.9e-3 * (1 + Math.cos(Math.PI / 110))) / 2)) < 1e-12,
  );
});
