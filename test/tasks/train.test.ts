import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { loadTaskCheckpoint, saveTaskCheckpoint } from '../../src/tasks/checkpoint.js';
import { buildTaskModel, DEFAULT_TASK_MODEL, MIXERS, type TaskModelConfig } from '../../src/tasks/models.js';
import { evaluate, taskOptimizer, trainOnTask, type TrainOptions } from '../../src/tasks/train.js';
import { decays } from '../../src/train/optimizer.js';

/** The task training loop: it learns a tiny task, resumes from a checkpoint exactly, and groups weight decay as documented (the trainer's AdamW). */
const bk = cpu();
const tiny: TaskModelConfig = {
  ...DEFAULT_TASK_MODEL,
  mixer: 'mamba',
  vocabSize: 6,
  dModel: 16,
  nLayer: 1,
  dState: 4,
  maxLength: 3,
};
const opts: TrainOptions = {
  steps: 60,
  batch: 32,
  lr: 1e-2,
  weightDecay: 0.1,
  warmup: 5,
  clipNorm: 1,
  seed: 3,
  evalEvery: 0,
  evalExamples: 0,
  logEvery: 10,
};
// Induction heads at length 3 is "special, key, special -> key": copy the token before the last.
const settings = { seqLen: 3, vocabSize: 6, count: 1 };

test('training on a tiny task lowers the loss and reaches high held-out accuracy', async () => {
  const m = buildTaskModel(tiny, bk, 1);
  const before = await evaluate(m, 'induction-heads', settings, 256, 3, 64);
  const log = await trainOnTask(m, taskOptimizer(m, opts), 'induction-heads', settings, opts);
  const after = await evaluate(m, 'induction-heads', settings, 256, 3, 64);
  assert.equal(log.steps, 60);
  assert.equal(log.stoppedBy, 'steps');
  const first = log.loss[0][1],
    last = log.loss[log.loss.length - 1][1];
  assert.ok(last < 0.5 * first, `loss ${first} -> ${last}`);
  assert.ok(before.token < 0.5 && after.token > 0.9, `accuracy ${before.token} -> ${after.token}`);
});

test('a run stopped and resumed from a checkpoint ends with the same weights as an uninterrupted one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mamba-ts-ckpt-'));
  try {
    const o = { ...opts, steps: 8 };
    const straight = buildTaskModel(tiny, bk, 5);
    await trainOnTask(straight, taskOptimizer(straight, o), 'induction-heads', settings, o);

    const first = buildTaskModel(tiny, bk, 5);
    const opt1 = taskOptimizer(first, o);
    const log1 = await trainOnTask(first, opt1, 'induction-heads', settings, { ...o, steps: 8, timeLimitSeconds: 0 });
    assert.equal(log1.stoppedBy, 'time');
    assert.equal(log1.steps, 1);
    const path = join(dir, 'run.safetensors');
    await saveTaskCheckpoint(path, first, opt1, log1);

    const second = buildTaskModel(tiny, bk, 99); // other initial weights: all of them come from the checkpoint
    const opt2 = taskOptimizer(second, o);
    const log2 = await loadTaskCheckpoint(path, second, opt2);
    assert.equal(log2?.steps, 1);
    assert.equal(opt2.step, 1);
    await trainOnTask(second, opt2, 'induction-heads', settings, o, log2);
    for (const [name, p] of straight.parameters()) {
      assert.deepEqual(bk.readSync(second.parameters().get(name)!), bk.readSync(p), name);
    }
    const other = buildTaskModel({ ...tiny, dModel: 8 }, bk, 1);
    await assert.rejects(loadTaskCheckpoint(path, other, taskOptimizer(other, o)), /another model/);
    assert.equal(await loadTaskCheckpoint(join(dir, 'absent.safetensors'), other, taskOptimizer(other, o)), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('weight decay skips SSM dynamics, skips, norms and biases of every mixer; task runs decay the embeddings', () => {
  for (const n of [
    'backbone.layers.0.mixer.A_log',
    'backbone.layers.1.mixer.core.A_im',
    'backbone.layers.0.mixer.core.log_dt',
    'backbone.layers.0.mixer.D',
    'backbone.layers.0.mixer.core.D',
    'backbone.layers.0.mixer.ssm.log_dt',
    'backbone.layers.0.norm.weight',
    'backbone.norm_f.weight',
    'backbone.layers.0.mixer.conv1d.bias',
    'backbone.layers.0.mixer.shift.bias',
    'backbone.layers.0.mixer.core.dt_proj.bias',
    'backbone.layers.0.mixer.filter_core.filter.b1',
  ])
    assert.equal(decays(n, true), false, n);
  for (const n of [
    'backbone.layers.0.mixer.in_proj.weight',
    'backbone.layers.0.mixer.core.C_re',
    'backbone.layers.0.mixer.ssm.C_im',
    'backbone.layers.0.mixer.dt_proj.weight',
    'backbone.layers.0.mixer.filter_core.filter.w3',
    'backbone.layers.0.mixer.short_conv.weight',
  ])
    assert.equal(decays(n), true, n);
  assert.equal(decays('backbone.embeddings.weight', true), true);
  assert.equal(decays('backbone.embeddings.weight'), false);
  // Every parameter of every task model falls in the group its kind belongs to.
  const noDecay = /(A_log|A_im|log_dt|\.D|bias|\.b\d|norm(_f)?\.weight)$/;
  for (const mixer of MIXERS) {
    const m = buildTaskModel({ ...tiny, mixer, dState: 4, hyenaOrder: 8, maxContext: 16 }, bk, 1);
    const opt = taskOptimizer(m, opts);
    assert.equal(opt.o.decayEmbeddings, true);
    for (const [name, p] of opt.params) {
      assert.equal(p.requiresGrad, true, name);
      assert.equal(decays(name, opt.o.decayEmbeddings), !noDecay.test(name), `${mixer}: ${name}`);
    }
  }
});

test('the quick evaluation reads held-out examples only (a different stream from training)', async () => {
  const m = buildTaskModel(tiny, bk, 1);
  const a = await evaluate(m, 'induction-heads', settings, 40, 3, 16);
  const b = await evaluate(m, 'induction-heads', settings, 40, 3, 7);
  assert.deepEqual(a, b, 'independent of the evaluation batch size');
});
