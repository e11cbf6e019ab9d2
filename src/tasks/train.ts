import { backward } from '../autograd/backward.js';
import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import { Rng } from '../mixers/init.js';
import * as F from '../ops/ops.js';
import { noGrad } from '../tensor/grad-mode.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { AdamW, optimizerStep } from '../train/optimizer.js';
import { learningRate } from '../train/schedule.js';
import type { TrainableModel } from '../train/trainable.js';
import { generate, type Batch, type TaskName, type TaskSettings } from './generators.js';
import type { TaskLanguageModel } from './models.js';

/**
 * Training and evaluation for the synthetic tasks: next-token cross-entropy at the scored positions
 * only (targets −1 elsewhere), fresh batches from the seeded generator every step (the papers train on
 * streams of generated examples too), and the trainer's AdamW (src/train/optimizer.ts), learning-rate
 * schedule (linear warmup, cosine decay to 10% of the peak: src/train/schedule.ts) and global-norm
 * clipping. Evaluation draws held-out examples from another stream of the same seed.
 */
export interface TrainOptions {
  steps: number;
  batch: number;
  lr: number;
  weightDecay: number;
  warmup: number;
  clipNorm: number;
  seed: number;
  /** Held-out examples for the quick accuracy checks during training (0: none). */
  evalEvery: number;
  evalExamples: number;
  /** Stop once a quick check reaches this token accuracy (e.g. 1 for "solved"); undefined: never. */
  stopAccuracy?: number;
  /** Stop (resumably) after this many seconds of training in this call; undefined: no limit. */
  timeLimitSeconds?: number;
  logEvery: number;
  log?: (line: string) => void;
}

export interface TrainLog {
  /** Optimiser steps done (over every call when resumed). */
  steps: number;
  /** Training seconds (over every call). */
  seconds: number;
  /** (step, mean loss over the steps since the previous point). */
  loss: [number, number][];
  /** (step, quick held-out token accuracy). */
  accuracy: [number, number][];
  /** Why the last call stopped: all steps done, the accuracy target reached, or the time limit (resumable). */
  stoppedBy: 'steps' | 'accuracy' | 'time' | 'running';
}

export function newTrainLog(): TrainLog {
  return { steps: 0, seconds: 0, loss: [], accuracy: [], stoppedBy: 'running' };
}

/** Streams: training data, held-out data (differs from the training stream by construction). */
export const STREAM = { train: 1, eval: 2, lengths: 3 } as const;

/** The schedule's floor: cosine decay to 10% of the peak learning rate. */
export const MIN_LR_RATIO = 0.1;

/**
 * The optimiser of a task run: AdamW with the task defaults (betas 0.9, 0.98 as in the Mamba
 * synthetics), weight decay on every matrix including the (tied) embeddings; every parameter is marked
 * for gradients.
 */
export function taskOptimizer(model: TrainableModel, o: Pick<TrainOptions, 'weightDecay'>): AdamW {
  const params = model.parameters();
  for (const p of params.values()) p.requiresGrad = true;
  return new AdamW(params, model.backend, {
    beta1: 0.9,
    beta2: 0.98,
    eps: 1e-8,
    weightDecay: o.weightDecay,
    decayEmbeddings: true,
  });
}

/**
 * Trains from step `log.steps` (0, or where a checkpoint stopped) towards `o.steps`. The batch of step
 * k is drawn from its own stream (seed, k), so a resumed run sees exactly the data of an uninterrupted one.
 */
export async function trainOnTask(
  model: TaskLanguageModel,
  opt: AdamW,
  task: TaskName,
  s: TaskSettings,
  o: TrainOptions,
  log: TrainLog = newTrainLog(),
): Promise<TrainLog> {
  const bk = model.backend;
  const data = new Rng(o.seed).fork(STREAM.train);
  const t0 = performance.now(),
    seconds0 = log.seconds;
  const schedule = { lr: o.lr, minLr: MIN_LR_RATIO * o.lr, warmupSteps: o.warmup, totalSteps: o.steps };
  let acc = 0,
    n = 0;
  log.stoppedBy = 'running';
  for (let step = log.steps; step < o.steps; step++) {
    const b = generate(task, data.fork(step), o.batch, s);
    const lr = learningRate(step + 1, schedule);
    const loss = scope(() => {
      const l = F.crossEntropy(model.forward(upload(bk, b.inputs, b)), upload(bk, b.targets, b));
      backward(l);
      return l;
    });
    const lv = (await loss.read())[0];
    loss.dispose();
    if (!Number.isFinite(lv))
      fail('NON_FINITE', `training ${model.config.mixer} on ${task}: the loss is ${lv} at step ${step + 1}`);
    const gnorm = await optimizerStep(model, opt, lr, o.clipNorm);
    acc += lv;
    n++;
    log.steps = step + 1;
    const elapsed = (performance.now() - t0) / 1000;
    log.seconds = seconds0 + elapsed;
    if ((step + 1) % o.logEvery === 0 || step + 1 === o.steps) {
      log.loss.push([step + 1, acc / n]);
      o.log?.(
        `step ${step + 1}/${o.steps}  loss ${(acc / n).toFixed(4)}  lr ${lr.toExponential(2)}  |g| ${gnorm.toFixed(3)}  ${(log.steps / log.seconds).toFixed(2)} steps/s`,
      );
      acc = 0;
      n = 0;
    }
    if (o.evalEvery > 0 && o.evalExamples > 0 && ((step + 1) % o.evalEvery === 0 || step + 1 === o.steps)) {
      const a = await evaluate(model, task, s, o.evalExamples, o.seed, o.batch);
      log.accuracy.push([step + 1, a.token]);
      o.log?.(`  held-out accuracy ${(100 * a.token).toFixed(1)}% (${o.evalExamples} examples)`);
      if (o.stopAccuracy !== undefined && a.token >= o.stopAccuracy) {
        log.stoppedBy = 'accuracy';
        break;
      }
    }
    if (o.timeLimitSeconds !== undefined && elapsed >= o.timeLimitSeconds && step + 1 < o.steps) {
      if (n > 0) {
        log.loss.push([step + 1, acc / n]);
        acc = 0;
        n = 0;
      }
      log.stoppedBy = 'time';
      break;
    }
  }
  if (log.stoppedBy === 'running') log.stoppedBy = 'steps';
  return log;
}

function upload(bk: Backend, data: Int32Array, b: Batch): Tensor {
  return bk.upload(data, [b.batch, b.length], 'i32');
}

export interface Accuracy {
  /** Correct predictions over scored positions. */
  token: number;
  /** Sequences with every scored position correct. */
  sequence: number;
  examples: number;
}

/** Accuracy on `examples` held-out examples of the training settings (greedy argmax at scored positions). */
export async function evaluate(
  model: TaskLanguageModel,
  task: TaskName,
  s: TaskSettings,
  examples: number,
  seed: number,
  batch: number,
): Promise<Accuracy> {
  const rng = new Rng(seed).fork(STREAM.eval);
  let right = 0,
    scored = 0,
    seqRight = 0;
  for (let done = 0; done < examples; done += batch) {
    const b = generate(task, rng, Math.min(batch, examples - done), s);
    const logits = noGrad(() => scope(() => model.forward(upload(model.backend, b.inputs, b))));
    const L = (await logits.read()) as Float32Array;
    logits.dispose();
    const V = model.vocabSize;
    for (let i = 0; i < b.batch; i++) {
      let all = true;
      for (let t = 0; t < b.length; t++) {
        const r = i * b.length + t,
          y = b.targets[r];
        if (y < 0) continue;
        scored++;
        const ok = argmax(L, r * V, V) === y;
        if (ok) right++;
        else all = false;
      }
      if (all) seqRight++;
    }
  }
  return { token: scored ? right / scored : 0, sequence: examples ? seqRight / examples : 0, examples };
}

export interface LengthAccuracy {
  length: number;
  accuracy: number;
  examples: number;
  seconds: number;
  method: 'chunked-state' | 'parallel';
}

/**
 * Accuracy at the last position for sequences of each length (the induction-heads extrapolation test):
 * constant-state mixers read the sequence in chunks through their recurrent state (memory independent
 * of the length); the others (attention, Hyena) run the parallel form over the whole sequence.
 */
export async function evaluateLengths(
  model: TaskLanguageModel,
  task: TaskName,
  s: TaskSettings,
  lengths: number[],
  examples: (len: number) => number,
  seed: number,
  chunk = 2048,
  log?: (line: string) => void,
): Promise<LengthAccuracy[]> {
  const out: LengthAccuracy[] = [];
  const V = model.vocabSize;
  // a fixed-size state: no block keeps a growing history (attention's and Hyena's carry a length)
  const stateful = model.blocks.every((blk) => !('length' in blk.mixer.stateShapes()));
  for (const len of lengths) {
    const rng = new Rng(seed).fork(STREAM.lengths).fork(len);
    const n = examples(len);
    const t0 = performance.now();
    let right = 0;
    const per = stateful ? Math.min(n, 16) : Math.max(1, Math.min(n, Math.floor(2 ** 16 / len)));
    for (let done = 0; done < n; done += per) {
      const b = generate(task, rng, Math.min(per, n - done), { ...s, seqLen: len });
      const last = await (stateful ? lastLogitsChunked(model, b, chunk) : lastLogitsParallel(model, b));
      for (let i = 0; i < b.batch; i++) {
        if (argmax(last, i * V, V) === b.targets[i * len + len - 1]) right++;
      }
    }
    const r: LengthAccuracy = {
      length: len,
      accuracy: right / n,
      examples: n,
      seconds: (performance.now() - t0) / 1000,
      method: stateful ? 'chunked-state' : 'parallel',
    };
    log?.(`  length ${len}: ${(100 * r.accuracy).toFixed(1)}% of ${n} (${r.seconds.toFixed(1)} s, ${r.method})`);
    out.push(r);
  }
  return out;
}

async function lastLogitsParallel(model: TaskLanguageModel, b: Batch): Promise<Float32Array> {
  const bk = model.backend;
  return readAndFree(noGrad(() => scope(() => model.forward(upload(bk, b.inputs, b), { lastOnly: true }))));
}

async function lastLogitsChunked(model: TaskLanguageModel, b: Batch, chunk: number): Promise<Float32Array> {
  const bk = model.backend;
  const st = model.initState(b.batch);
  let last: Float32Array | undefined;
  for (let t0 = 0; t0 < b.length; t0 += chunk) {
    const len = Math.min(chunk, b.length - t0);
    const ids = new Int32Array(b.batch * len);
    for (let i = 0; i < b.batch; i++) ids.set(b.inputs.subarray(i * b.length + t0, i * b.length + t0 + len), i * len);
    const lg = noGrad(() =>
      scope(() => model.forward(bk.upload(ids, [b.batch, len], 'i32'), { state: st, lastOnly: true })),
    );
    last = await readAndFree(lg);
  }
  st.dispose();
  return last!;
}

/** The logits' values (any backend: the CPU's read resolves at once), then the tensor freed. */
async function readAndFree(t: Tensor): Promise<Float32Array> {
  const data = (await t.read()) as Float32Array;
  t.dispose();
  return data;
}

function argmax(a: Float32Array, o: number, n: number): number {
  let best = 0,
    bv = a[o];
  for (let i = 1; i < n; i++)
    if (a[o + i] > bv) {
      bv = a[o + i];
      best = i;
    }
  return best;
}
