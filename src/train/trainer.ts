import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { backward } from '../autograd/backward.js';
import { noGrad } from '../tensor/grad-mode.js';
import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import { encodeSafetensors } from '../io/safetensors-writer.js';
import { loadAnyLanguageModel } from '../models/node/load-checkpoint.js';
import { unfoldMultipliers } from './unfold-multipliers.js';
import * as F from '../ops/ops.js';
import { scope } from '../tensor/scope.js';
import { loadTokenizer } from '../tokenizer/node.js';
import type { TextTokenizer } from '../tokenizer/text-tokenizer.js';
import {
  checkCheckpointDirWritable,
  checkTrainerState,
  exists,
  OPTIMIZER_STATE,
  readF32Tensors,
  readJsonFile,
  recoverCheckpointDir,
  TRAINER_STATE,
  writeCheckpointDir,
} from './checkpoint.js';
import { loadDocuments } from './corpus.js';
import { encodeDocuments, splitDocuments, utf8Bytes, WindowSampler, type TokenData } from './data.js';
import { evaluate, tokenByteLengths, type EvalResult } from './evaluate.js';
import { lossCurveSvg } from './loss-curve.js';
import {
  configJsonOf,
  createModel,
  generationConfigOf,
  settingsConfigFor,
  modelTensors,
  type TrainLm,
  checkTrainable,
} from './model-io.js';
import { AdamW, optimizerStep } from './optimizer.js';
import { learningRate } from './schedule.js';
import { parseTrainSettings, settingsToJson, type TrainSettings } from './settings.js';
import { buildTokenizer } from './tokenizer-setup.js';

/**
 * A training run: data, tokenizer, model, optimiser and sampler, trained for a number of optimiser
 * steps with checkpoints that resume exactly (same batches, same updates, same losses).
 *
 * Each step: gradAccum micro-batches of batchSize random windows (forward, mean cross-entropy,
 * backward with weight 1/gradAccum), then the global gradient norm, clipping (as a gradient scale),
 * an AdamW update at the scheduled learning rate, and the gradients dropped. The model's output
 * directory is a checkpoint after every `saveEvery` steps, at the end and on interruption.
 */
export interface TrainerState {
  format: 'mamba-ts-train/1';
  /** Optimiser steps done. */
  step: number;
  totalSteps: number;
  tokensSeen: number;
  /** Seconds spent in training steps over all sessions. */
  trainSeconds: number;
  /** The window sampler's random state after `step` steps. */
  sampler: number[];
  settings: Record<string, Record<string, unknown>>;
  data: { source: string; description: string; trainTokens: number; valTokens: number; valBytes: number };
  history: { step: number; loss: number; lr: number; gradNorm: number }[];
  evals: { step: number; loss: number; bpb: number; tokens: number }[];
  /** The full validation evaluation after the last step. */
  final?: EvalResult & { step: number };
  /** A fine-tuning run: the checkpoint it started from (settings.model and .tokenizer are unused). */
  from?: { model: string; freezeEmbeddings: boolean };
}

export interface TrainRun {
  outDir: string;
  lm: TrainLm;
  settings: TrainSettings;
  tokenizer: TextTokenizer;
  /**
   * The files every save writes unchanged: config.json, generation_config.json and the tokenizer's
   * (tokenizer.json, tokenizer_config.json, ...), as JSON objects or text.
   */
  fixedFiles: Record<string, unknown>;
  data: TokenData;
  byteLengths: Int32Array;
  optimizer: AdamW;
  sampler: WindowSampler;
  state: TrainerState;
  /** The step of the checkpoint on disk (0: none yet). */
  savedStep: number;
}

export interface StartOptions {
  /** `brown` or a text file. */
  data: string;
  settings: TrainSettings;
  steps: number;
  outDir: string;
  backend: Backend;
  log?: (line: string) => void;
}

/** Prepares a new run (tokenizer trained, model initialised); nothing is written yet. */
export async function startRun(o: StartOptions): Promise<TrainRun> {
  const log = o.log ?? (() => undefined);
  await checkFreshOutDir(o.outDir);
  await checkCheckpointDirWritable(o.outDir);
  const s = o.settings;
  const { docs, description } = loadDocuments(o.data);
  const split = splitDocuments(docs, { valFraction: s.train.valFraction });
  let t0 = performance.now();
  const tok = buildTokenizer(s.tokenizer, split.train);
  log(
    `tokenizer: ${s.tokenizer.type === 'bpe' ? `byte-level BPE, ${tok.tokenizer.vocabSize} tokens, trained on the training text` : 'bytes'} (${secs(t0)})`,
  );
  t0 = performance.now();
  const data = prepareData(tok.tokenizer, split, description);
  log(
    `data: ${description}: ${fmtInt(data.train.length)} training tokens, ${fmtInt(data.val.length)} validation tokens (${fmtInt(data.valBytes)} bytes) (${secs(t0)})`,
  );
  const cfg = settingsConfigFor(s.model, tok.tokenizer.vocabSize, {
    eos: tok.tokenizer.eosTokenId,
    bos: tok.tokenizer.bosTokenId,
    pad: tok.tokenizer.padTokenId,
  });
  const lm = await createModel(cfg, s.model, s.train.seed, o.backend);
  log(
    `model: ${s.model.arch}, ${s.model.nLayer} layers x d_model ${s.model.dModel}, vocab ${cfg.vocabSize}: ${fmtInt(lm.parameterCount())} parameters (${((lm.parameterCount() * 4) / 2 ** 20).toFixed(1)} MiB f32)`,
  );
  const state = freshState(o.steps, s, o.data, description, data);
  const fixedFiles = {
    'config.json': configJsonOf(cfg, s.model),
    'generation_config.json': generationConfigOf(cfg),
    'tokenizer.json': tok.tokenizerJson,
    'tokenizer_config.json': tok.tokenizerConfig,
  };
  return assemble(o.outDir, lm, s, tok.tokenizer, fixedFiles, data, state, null);
}

/**
 * A new run's --out must not exist or be an empty directory: each save replaces the whole directory,
 * so anything else in it would be lost.
 */
export async function checkFreshOutDir(dir: string): Promise<void> {
  await recoverCheckpointDir(dir);
  if (!(await exists(dir))) return;
  if (await exists(join(dir, TRAINER_STATE)))
    fail(
      'BAD_ARGUMENT',
      `--out ${dir} already holds a training run; continue it with --resume, or choose another --out`,
    );
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return fail(
      'BAD_ARGUMENT',
      `--out ${dir} exists and is not a directory; choose a new directory (it is replaced at every save)`,
    );
  }
  if (entries.length > 0)
    fail(
      'BAD_ARGUMENT',
      `--out ${dir} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); choose a new or empty directory: it is replaced at every save`,
    );
}

export interface ResumeOptions {
  outDir: string;
  /** The data spec; must be the one the run started with. Default: the stored one. */
  data?: string;
  /** A new total step count (the schedule is recomputed). */
  steps?: number;
  backend: Backend;
  log?: (line: string) => void;
}

/** Loads a run from its checkpoint directory. */
export async function resumeRun(o: ResumeOptions): Promise<TrainRun> {
  const log = o.log ?? (() => undefined);
  await recoverCheckpointDir(o.outDir);
  const statePath = join(o.outDir, TRAINER_STATE);
  if (!(await exists(statePath)))
    fail(
      'FILE_NOT_FOUND',
      `--resume: ${o.outDir} has no ${TRAINER_STATE}; it is not a training run's output directory`,
      { path: statePath },
    );
  const raw = await readJsonFile(statePath, 'the training state');
  checkTrainerState(raw, statePath);
  const state = raw as TrainerState;
  await checkCheckpointDirWritable(o.outDir);
  const s = parseTrainSettings(state.settings, statePath);
  const source = o.data ?? state.data.source;
  if (source !== state.data.source)
    fail('CONFIG_MISMATCH', `--data ${source} differs from the data this run started with (${state.data.source})`);
  const { docs, description } = loadDocuments(source);
  const tokenizer = await loadTokenizer(o.outDir);
  const data = prepareData(tokenizer, splitDocuments(docs, { valFraction: s.train.valFraction }), description);
  if (data.train.length !== state.data.trainTokens || data.val.length !== state.data.valTokens) {
    fail(
      'CONFIG_MISMATCH',
      `the data ${source} now gives ${data.train.length} training / ${data.val.length} validation tokens, the run had ${state.data.trainTokens} / ${state.data.valTokens}: the text changed`,
    );
  }
  const lm = await loadAnyLanguageModel(o.outDir, { backend: o.backend, dtype: 'f32' });
  unfoldMultipliers(lm);
  if (o.steps !== undefined) {
    if (o.steps < state.step) fail('BAD_ARGUMENT', `--steps ${o.steps} is below the ${state.step} steps already done`);
    state.totalSteps = o.steps;
  }
  const fixedFiles = await readFixedFiles(o.outDir);
  const opt = await readF32Tensors(join(o.outDir, OPTIMIZER_STATE));
  log(`resuming ${o.outDir} at step ${state.step} of ${state.totalSteps}`);
  return assemble(o.outDir, lm, s, tokenizer, fixedFiles, data, state, opt);
}

/** The tokenizer files a checkpoint directory may hold, copied as they are (tokenizer.json required). */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'] as const;

/**
 * A checkpoint directory's config.json, generation_config.json and tokenizer files as text, to be
 * written again unchanged (those other than config.json and tokenizer.json only where present).
 */
export async function readFixedFiles(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of ['config.json', 'generation_config.json', ...TOKENIZER_FILES]) {
    const path = join(dir, name);
    if (!(await exists(path))) {
      if (name === 'config.json' || name === 'tokenizer.json')
        fail('FILE_NOT_FOUND', `${dir} has no ${name}`, { path });
      continue;
    }
    // parsed first: a damaged file is an error here rather than in the checkpoint written
    await readJsonFile(path, name);
    out[name] = await readFile(path, 'utf8');
  }
  return out;
}

/**
 * The run's parts assembled: every parameter requires a gradient and is updated by AdamW, except the
 * embeddings (and a head tied to them) when a fine-tuning run freezes them.
 */
export function assemble(
  outDir: string,
  lm: TrainLm,
  s: TrainSettings,
  tokenizer: TextTokenizer,
  fixedFiles: Record<string, unknown>,
  data: TokenData,
  state: TrainerState,
  optState: Map<string, Float32Array> | null,
): TrainRun {
  checkTrainable(lm);
  const params = lm.parameters();
  if (state.from?.freezeEmbeddings) for (const [name, t] of params) if (t === lm.embeddings) params.delete(name);
  for (const p of params.values()) p.requiresGrad = true;
  const optimizer = new AdamW(params, lm.backend, {
    beta1: s.train.beta1,
    beta2: s.train.beta2,
    eps: s.train.eps,
    weightDecay: s.train.weightDecay,
  });
  if (optState) optimizer.loadState(state.step, optState, join(outDir, OPTIMIZER_STATE));
  const sampler = new WindowSampler(data.train, s.train.seqLen, s.train.seed);
  if (state.sampler.length) sampler.rng.setState(state.sampler);
  return {
    outDir,
    lm,
    settings: s,
    tokenizer,
    fixedFiles,
    data,
    byteLengths: tokenByteLengths(tokenizer, lm.vocabSize),
    optimizer,
    sampler,
    state,
    savedStep: optState ? state.step : 0,
  };
}

/** The state of a run before its first step. */
export function freshState(
  steps: number,
  s: TrainSettings,
  source: string,
  description: string,
  data: { train: Int32Array; val: Int32Array; valBytes: number },
): TrainerState {
  return {
    format: 'mamba-ts-train/1',
    step: 0,
    totalSteps: steps,
    tokensSeen: 0,
    trainSeconds: 0,
    sampler: [],
    settings: settingsToJson(s),
    data: { source, description, trainTokens: data.train.length, valTokens: data.val.length, valBytes: data.valBytes },
    history: [],
    evals: [],
  };
}

export function prepareData(
  tok: TextTokenizer,
  split: { train: { name: string; text: string }[]; val: { name: string; text: string }[] },
  description: string,
): TokenData {
  return {
    train: encodeDocuments(tok, split.train),
    val: encodeDocuments(tok, split.val),
    valBytes: utf8Bytes(split.val),
    description: `${description}; ${split.train.length} training / ${split.val.length} validation documents`,
  };
}

export interface StepReport {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Training tokens per second over this session's steps. */
  tokensPerSecond: number;
  /** Seconds left at the current speed (training steps only). */
  etaSeconds: number;
}

export interface TrainHooks {
  /** Stop after the current step (the run is saved first). */
  signal?: AbortSignal;
  onStep?: (r: StepReport) => void;
  onEval?: (step: number, r: EvalResult, final: boolean) => void;
  onSave?: (step: number) => void;
}

export interface TrainOutcome {
  interrupted: boolean;
  step: number;
  final?: EvalResult;
}

/** Trains until state.totalSteps (or an interruption), saving checkpoints along the way. */
export async function train(run: TrainRun, hooks: TrainHooks = {}): Promise<TrainOutcome> {
  const { lm, optimizer, sampler, state } = run;
  const t = run.settings.train;
  const bk = lm.backend;
  const tokensPerStep = t.batchSize * t.seqLen * t.gradAccum;
  let sessionSeconds = 0,
    sessionSteps = 0;
  const sched = { lr: t.lr, minLr: t.minLr, warmupSteps: t.warmupSteps, totalSteps: state.totalSteps };
  while (state.step < state.totalSteps) {
    const step = state.step + 1;
    const lr = learningRate(step, sched);
    const t0 = performance.now();
    let lossSum = 0;
    for (let k = 0; k < t.gradAccum; k++) {
      const batch = sampler.next(t.batchSize);
      const loss = scope(() => {
        const logits = lm.forward(bk.upload(batch.inputs, [batch.batch, batch.seqLen], 'i32'));
        const l = F.crossEntropy(logits, bk.upload(batch.targets, [batch.batch, batch.seqLen], 'i32'));
        backward(l, bk.upload(Float32Array.of(1 / t.gradAccum), [1]));
        return l;
      });
      lossSum += (await loss.readFloat())[0];
      loss.dispose();
    }
    const loss = lossSum / t.gradAccum;
    if (!Number.isFinite(loss)) {
      fail(
        'NON_FINITE',
        `the training loss became ${loss} at step ${step} (learning rate ${lr.toExponential(2)}); lower train.lr or raise train.warmup_steps. ${run.savedStep > 0 ? `The last checkpoint (step ${run.savedStep}) in ${run.outDir} is intact` : 'Nothing was saved'}`,
      );
    }
    const gradNorm = await optimizerStep(lm, optimizer, lr, t.gradClip);
    const seconds = (performance.now() - t0) / 1000;
    sessionSeconds += seconds;
    sessionSteps++;
    state.step = step;
    state.tokensSeen += tokensPerStep;
    state.trainSeconds += seconds;
    state.sampler = sampler.rng.getState();
    state.history.push({ step, loss, lr, gradNorm });
    hooks.onStep?.({
      step,
      totalSteps: state.totalSteps,
      loss,
      lr,
      gradNorm,
      tokensPerSecond: (sessionSteps * tokensPerStep) / sessionSeconds,
      etaSeconds: (state.totalSteps - step) * (sessionSeconds / sessionSteps),
    });
    const last = step === state.totalSteps;
    if (step % t.evalEvery === 0 && !last) {
      const r = await evaluate(lm, run.data.val, run.byteLengths, {
        seqLen: t.seqLen,
        batchSize: t.batchSize,
        maxTokens: t.evalTokens,
      });
      state.evals.push({ step, loss: r.loss, bpb: r.bpb, tokens: r.tokens });
      hooks.onEval?.(step, r, false);
    }
    if (last) {
      const r = await evaluate(lm, run.data.val, run.byteLengths, { seqLen: t.seqLen, batchSize: t.batchSize });
      state.evals.push({ step, loss: r.loss, bpb: r.bpb, tokens: r.tokens });
      state.final = { ...r, step };
      hooks.onEval?.(step, r, true);
    }
    const interrupted = hooks.signal?.aborted ?? false;
    if (last || interrupted || step % t.saveEvery === 0) {
      await saveRun(run);
      hooks.onSave?.(step);
    }
    if (interrupted && !last) return { interrupted: true, step };
  }
  return state.final
    ? { interrupted: false, step: state.step, final: state.final }
    : { interrupted: false, step: state.step };
}

/** Writes the run's checkpoint directory (atomically). */
export async function saveRun(run: TrainRun): Promise<void> {
  const { lm, state } = run;
  const check = await checkTensors(run);
  const opt = [];
  for (const [name, t] of run.optimizer.stateTensors())
    opt.push({ name, dtype: 'F32' as const, shape: t.shape, data: await t.readFloat() });
  const title = `${run.outDir.split(/[\\/]/).pop()}: step ${state.step}/${state.totalSteps}${state.final ? `, validation ${state.final.bpb.toFixed(3)} bits per byte` : ''}`;
  await writeCheckpointDir(run.outDir, {
    model: await modelTensors(lm),
    optimizer: opt,
    files: {
      ...run.fixedFiles,
      [TRAINER_STATE]: state,
      'loss_curve.svg': lossCurveSvg({
        title,
        train: state.history.map((h) => ({ step: h.step, loss: h.loss })),
        val: state.evals.map((e) => ({ step: e.step, loss: e.loss })),
      }),
      'check.safetensors': check,
    },
  });
  run.savedStep = state.step;
}

/**
 * check.safetensors: token ids (2, 16) from the validation stream and mamba-ts's logits for them
 * (2, 16, V), and in its metadata a sentence (`text`) with mamba-ts's token ids for it (`text_ids`),
 * for scripts/fixtures/check_hf_load.py to compare with transformers.
 */
async function checkTensors(run: TrainRun): Promise<Uint8Array> {
  const src = run.data.val.length >= 32 ? run.data.val : run.data.train;
  const l = Math.min(16, Math.floor(src.length / 2));
  const ids = Int32Array.from(src.subarray(0, 2 * l));
  const bk = run.lm.backend;
  const logits = noGrad(() => scope(() => run.lm.forward(bk.upload(ids, [2, l], 'i32'))));
  const data = await logits.readFloat();
  logits.dispose();
  return encodeSafetensors(
    [
      { name: 'input_ids', dtype: 'I32', shape: [2, l], data: ids },
      { name: 'logits', dtype: 'F32', shape: [2, l, run.lm.vocabSize], data },
    ],
    {
      format: 'pt',
      text: CHECK_TEXT,
      text_ids: JSON.stringify(run.tokenizer.encode(CHECK_TEXT, { addSpecialTokens: false })),
    },
  );
}

/** A sentence whose token ids check.safetensors records, to compare tokenizers across libraries. */
const CHECK_TEXT = 'The jury said, "It\'s 1961 -- a naïve café in Zürich?"\n\nNo.';

function secs(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(1)} s`;
}

export function fmtInt(n: number): string {
  return n.toLocaleString('en-US');
}
