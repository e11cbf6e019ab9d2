import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { cpu } from '../backend/cpu/cpu-backend.js';
import { fail } from '../errors.js';
import {
  PAPER_SETTINGS,
  SMALL_SETTINGS,
  TASK_DESCRIPTIONS,
  TASKS,
  type TaskName,
  type TaskSettings,
} from '../tasks/generators.js';
import {
  buildTaskModel,
  DEFAULT_TASK_MODEL,
  MIXER_DESCRIPTIONS,
  MIXERS,
  type MixerName,
  type TaskModelConfig,
} from '../tasks/models.js';
import { buildReport } from '../tasks/report.js';
import { stateSizeSection, stateTrackingSection } from '../tasks/report-state.js';
import { isTaskRunResult, type TaskRunResult } from '../tasks/results.js';
import { loadTaskCheckpoint, saveTaskCheckpoint } from '../tasks/checkpoint.js';
import { saveTaskModel } from '../tasks/task-model-save.js';
import {
  evaluate,
  evaluateLengths,
  newTrainLog,
  taskOptimizer,
  trainOnTask,
  type TrainOptions,
} from '../tasks/train.js';
import { HELP_OPTION, helpText, oneOf, parse, type CommandSpec } from './args.js';
import { BACKEND_OPTIONS, backendFromArgs } from './common.js';
import { lmCommand, TASKS_LM_HELP } from './tasks-lm.js';

const RESULTS_DIR = 'bench/results/tasks';

const fmtSettings = (k: keyof TaskSettings): string => TASKS.map((t) => SMALL_SETTINGS[t][k]).join(', ');
const fmtPaper = (k: keyof TaskSettings): string => TASKS.map((t) => PAPER_SETTINGS[t][k]).join(', ');
const M = DEFAULT_TASK_MODEL;

/** `tasks run`'s options; the per-task defaults are SMALL_SETTINGS (PAPER_SETTINGS with --paper). */
export const TASKS_RUN = {
  name: 'tasks run',
  summary: 'train a mixer on a task, evaluate it, write a results JSON',
  usage: ['mamba-ts tasks run <task> --mixer <mixer> [options]'],
  positionals: true,
  options: {
    mixer: { type: 'enum', values: MIXERS, arg: '<name>', help: 'the sequence mixer (required)' },
    paper: { type: 'boolean', help: "start from the paper's task settings instead of the small ones" },
    'seq-len': {
      type: 'int',
      min: 3,
      defaultText: `${TASKS.join(', ')}: ${fmtSettings('seqLen')}; paper ${fmtPaper('seqLen')}`,
      help: 'training sequence length',
    },
    vocab: {
      type: 'int',
      min: 3,
      defaultText: `${fmtSettings('vocabSize')}; paper ${fmtPaper('vocabSize')}`,
      help: 'vocabulary',
    },
    count: {
      type: 'int',
      min: 1,
      defaultText: `${fmtSettings('count')}; paper ${fmtPaper('count')}`,
      help: 'selective-copying: tokens to memorise; mqar: key-value pairs; modular-addition: the modulus',
    },
    'd-model': { type: 'int', min: 1, default: M.dModel, help: 'model width' },
    layers: { type: 'int', min: 1, default: M.nLayer, help: 'blocks' },
    'd-state': { type: 'int', min: 1, default: M.dState, help: 'SSM state size' },
    expand: { type: 'int', min: 1, default: M.expand, help: 'channel expansion' },
    heads: { type: 'int', min: 1, default: M.heads, help: 'heads of attention, Mamba-2 and Mamba-3' },
    'd-conv': { type: 'int', min: 1, default: M.dConv, help: 'Mamba conv width' },
    'max-context': {
      type: 'int',
      min: 1,
      default: M.maxContext,
      help: 'KV cache / Hyena history capacity for chunked evaluation',
    },
    steps: { type: 'int', min: 1, default: 2000, help: 'optimiser steps' },
    batch: { type: 'int', min: 1, default: 16, help: 'examples per step' },
    lr: { type: 'number', min: 0, minExclusive: true, default: 1e-3, help: 'peak learning rate' },
    'weight-decay': { type: 'number', min: 0, default: 0.1, help: 'AdamW weight decay' },
    warmup: { type: 'int', min: 0, defaultText: '10% of --steps', help: 'warmup steps' },
    clip: { type: 'number', min: 0, default: 1, help: 'gradient norm clip' },
    seed: { type: 'int', min: 0, default: 0, help: 'seed of weights and data' },
    'eval-examples': { type: 'int', min: 1, default: 512, help: 'held-out examples for the final accuracy' },
    'eval-every': { type: 'int', min: 0, default: 250, help: 'quick held-out check every n steps (0: off)' },
    'stop-accuracy': { type: 'number', min: 0, max: 1, help: 'stop once a quick check reaches this accuracy (e.g. 1)' },
    'eval-lengths': {
      type: 'string',
      arg: '<list>',
      help: 'induction-heads: test lengths, e.g. 64,128,...,16384 or 2^6..2^14',
    },
    'length-examples': {
      type: 'int',
      min: 1,
      default: 64,
      help: 'examples per test length (halved per doubling past 4096, at least 8)',
    },
    out: {
      type: 'string',
      arg: '<file>',
      nonEmpty: true,
      defaultText: `${RESULTS_DIR}/<task>-<mixer>-d<d>-L<len>-s<seed>.json`,
      help: 'results JSON',
    },
    checkpoint: {
      type: 'string',
      arg: '<file>',
      nonEmpty: true,
      help:
        'save the model and optimiser there when training stops, and resume from it if it exists (same options), ' +
        'so a long run can be split over several calls',
    },
    'time-limit': {
      type: 'number',
      min: 0,
      minExclusive: true,
      arg: '<seconds>',
      help:
        'stop training after this long in this call (saving --checkpoint); rerun the same command to continue. ' +
        'The results JSON is written once all steps are done',
    },
    'save-model': {
      type: 'string',
      arg: '<file.safetensors>',
      nonEmpty: true,
      help: 'also write the trained model (parameters, config, task, accuracy; no optimiser state) for shipping',
    },
    quiet: { type: 'boolean', help: 'no progress lines' },
    backend: {
      ...BACKEND_OPTIONS.backend,
      help: 'where to compute (webgpu: every mixer, through WGSL kernels)',
    },
    ...HELP_OPTION,
  },
} as const satisfies CommandSpec;

export const TASKS_REPORT = {
  name: 'tasks report',
  summary: 'results -> markdown tables + SVG plots',
  usage: ['mamba-ts tasks report [--in <dir>] [--out <file.md>]'],
  options: {
    in: {
      type: 'string',
      arg: '<dir>',
      nonEmpty: true,
      default: RESULTS_DIR,
      help: 'where the results JSON files are',
    },
    out: {
      type: 'string',
      arg: '<file>',
      nonEmpty: true,
      defaultText: 'print to stdout',
      help: 'the markdown file; plots are written beside it as <name>.svg',
    },
    ...HELP_OPTION,
  },
} as const satisfies CommandSpec;

const HELP = `mamba-ts tasks: the synthetic tasks of the Mamba paper and Zoology, any mixer, one engine

Usage:
  mamba-ts tasks run <task> --mixer <mixer> [options]   train, evaluate, write a results JSON
  mamba-ts tasks report [--in <dir>] [--out <file.md>]  results -> markdown tables + SVG plots
  mamba-ts tasks lm --mixers <list> --seconds <s>       mixers on byte-level Brown corpus modelling, equal time

Tasks:
${TASKS.map((t) => `  ${t.padEnd(18)} ${TASK_DESCRIPTIONS[t]}`).join('\n')}

Mixers:
${MIXERS.map((m) => `  ${m.padEnd(12)} ${MIXER_DESCRIPTIONS[m]}`).join('\n')}

${helpText(TASKS_RUN)}
${helpText(TASKS_REPORT)}
${TASKS_LM_HELP}`;

/** Where the command's results go (stdout; tests pass their own). Progress lines go to stderr. */
export type Print = (text: string) => void;
const stdout: Print = (t) => {
  process.stdout.write(t);
};

export async function tasksCommand(argv: string[], print: Print = stdout): Promise<void> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
    print(HELP);
    return;
  }
  if (sub === 'run') return runCommand(rest, print);
  if (sub === 'report') return reportCommand(rest, print);
  if (sub === 'lm') return lmCommand(rest, print, HELP);
  fail('BAD_ARGUMENT', `tasks: unknown subcommand "${sub}"; use run, report or lm (see mamba-ts tasks --help)`);
}

/** "64,128" or "2^6..2^14" (every power of two in between) -> lengths. */
export function parseLengths(v: string): number[] {
  const range = /^2\^(\d+)\s*\.\.\s*2\^(\d+)$/.exec(v.trim());
  if (range) {
    const a = Number(range[1]),
      b = Number(range[2]);
    if (a > b || b > 24) fail('BAD_ARGUMENT', `--eval-lengths ${v}: expected 2^a..2^b with a <= b <= 24`);
    return Array.from({ length: b - a + 1 }, (_, i) => 2 ** (a + i));
  }
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s)
    .map((s) => {
      const n = /^2\^(\d+)$/.test(s) ? 2 ** Number(s.slice(2)) : Number(s);
      if (!(Number.isInteger(n) && n >= 3))
        fail('BAD_ARGUMENT', `--eval-lengths: "${s}" is not a length >= 3 (give e.g. 64,128,256 or 2^6..2^12)`);
      return n;
    });
}

async function runCommand(argv: string[], print: Print): Promise<void> {
  const { help, values: v, positionals } = parse(TASKS_RUN, argv);
  if (help) {
    print(HELP);
    return;
  }
  if (positionals.length !== 1)
    fail(
      'BAD_ARGUMENT',
      `tasks run: give exactly one task (${TASKS.join(', ')}), got ${positionals.length ? positionals.join(' ') : 'none'}`,
    );
  const task = oneOf<TaskName>(positionals[0], 'task', TASKS, 'selective-copying');
  const mixer = (v.mixer ?? fail('BAD_ARGUMENT', `tasks run: --mixer is required (${MIXERS.join(', ')})`)) as MixerName;
  const base = v.paper ? PAPER_SETTINGS[task] : SMALL_SETTINGS[task];
  const settings: TaskSettings = {
    seqLen: v['seq-len'] ?? base.seqLen,
    vocabSize: v.vocab ?? base.vocabSize,
    count: v.count ?? base.count,
  };
  const steps = v.steps;
  const model: TaskModelConfig = {
    ...DEFAULT_TASK_MODEL,
    mixer,
    vocabSize: settings.vocabSize,
    dModel: v['d-model'],
    nLayer: v.layers,
    dState: v['d-state'],
    expand: v.expand,
    heads: v.heads,
    dConv: v['d-conv'],
    maxLength: settings.seqLen,
    maxContext: v['max-context'],
  };
  const stop = v['stop-accuracy'];
  const train: Omit<TrainOptions, 'log'> = {
    steps,
    batch: v.batch,
    lr: v.lr,
    weightDecay: v['weight-decay'],
    warmup: v.warmup ?? Math.max(1, Math.round(steps / 10)),
    clipNorm: v.clip,
    seed: v.seed,
    evalEvery: v['eval-every'],
    evalExamples: v['eval-examples'],
    logEvery: Math.max(1, Math.min(50, Math.round(steps / 20))),
    ...(stop !== undefined ? { stopAccuracy: stop } : {}),
  };
  const lengths = v['eval-lengths'] !== undefined ? parseLengths(v['eval-lengths']) : [];
  if (lengths.length && task !== 'induction-heads' && task !== 'parity' && task !== 'modular-addition')
    fail(
      'BAD_ARGUMENT',
      '--eval-lengths is for induction-heads, parity and modular-addition (scored at the last position)',
    );
  const perLength = v['length-examples'];
  const quiet = v.quiet;
  const log = quiet
    ? undefined
    : (line: string): void => {
        process.stderr.write(line + '\n');
      };
  const out = v.out ?? join(RESULTS_DIR, `${task}-${mixer}-d${model.dModel}-L${settings.seqLen}-s${train.seed}.json`);

  const timeLimit = v['time-limit'];
  const checkpoint = v.checkpoint;
  if (timeLimit !== undefined && !checkpoint)
    fail('BAD_ARGUMENT', '--time-limit needs --checkpoint (where the stopped run is kept to be resumed)');

  // the CPU engine single-threaded, as the recorded runs were (no worker pool)
  const bk = v.backend === 'cpu' ? cpu() : await backendFromArgs({ backend: v.backend, threads: undefined });
  const lm = buildTaskModel(model, bk, train.seed);
  const opt = taskOptimizer(lm, train);
  const resumed = checkpoint ? await loadTaskCheckpoint(checkpoint, lm, opt) : undefined;
  log?.(
    `${task} with ${mixer}: ${lm.parameterCount()} parameters, d_model ${model.dModel}, ${model.nLayer} layers, sequences of ${settings.seqLen}, ${train.steps} steps of ${train.batch}${resumed ? ` (resuming at step ${resumed.steps})` : ''}`,
  );
  const quickEval = {
    ...train,
    evalExamples: Math.min(train.evalExamples, 128),
    ...(timeLimit !== undefined ? { timeLimitSeconds: timeLimit } : {}),
  };
  const trainLog =
    resumed?.stoppedBy === 'steps' || resumed?.stoppedBy === 'accuracy'
      ? resumed
      : await trainOnTask(lm, opt, task, settings, { ...quickEval, ...(log ? { log } : {}) }, resumed ?? newTrainLog());
  if (checkpoint) {
    mkdirSync(dirname(checkpoint), { recursive: true });
    await saveTaskCheckpoint(checkpoint, lm, opt, trainLog);
  }
  if (trainLog.stoppedBy === 'time') {
    log?.(
      `time limit: stopped at step ${trainLog.steps} of ${train.steps}; checkpoint ${checkpoint}. Run the same command again to continue.`,
    );
    print(`${checkpoint}\n`);
    return;
  }
  const tEval = performance.now();
  const accuracy = await evaluate(lm, task, settings, train.evalExamples, train.seed, train.batch);
  log?.(
    `held-out accuracy ${(100 * accuracy.token).toFixed(2)}% (sequences exact ${(100 * accuracy.sequence).toFixed(1)}%, ${accuracy.examples} examples)`,
  );
  const lengthResults = lengths.length
    ? await evaluateLengths(
        lm,
        task,
        settings,
        lengths,
        (len) => Math.max(8, Math.min(perLength, Math.floor((perLength * 4096) / Math.max(len, 4096)))),
        train.seed,
        2048,
        log,
      )
    : [];
  const result: TaskRunResult = {
    format: 'mamba-ts-task-run/1',
    task,
    mixer,
    command: ['mamba-ts', 'tasks', 'run', ...argv].join(' '),
    settings,
    model,
    parameters: lm.parameterCount(),
    train,
    log: trainLog,
    accuracy,
    lengths: lengthResults,
    wallSeconds: trainLog.seconds + (performance.now() - tEval) / 1000,
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      backend: bk.name,
    },
    date: new Date().toISOString(),
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 1) + '\n');
  print(`${out}\n`);
  const saveTo = v['save-model'];
  if (saveTo !== undefined) {
    mkdirSync(dirname(saveTo), { recursive: true });
    await saveTaskModel(saveTo, lm, {
      task,
      settings,
      model,
      accuracy,
      steps: trainLog.steps,
      seed: train.seed,
      command: result.command,
    });
    print(`${saveTo}\n`);
  }
}

async function reportCommand(argv: string[], print: Print): Promise<void> {
  const { help, values: v } = parse(TASKS_REPORT, argv);
  if (help) {
    print(HELP);
    return;
  }
  const dir = v.in;
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort();
  } catch {
    return fail(
      'FILE_NOT_FOUND',
      `tasks report: no results directory ${dir} (run mamba-ts tasks run first, or give --in)`,
    );
  }
  const runs: TaskRunResult[] = [];
  for (const f of files) {
    let j: unknown;
    try {
      j = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    } catch (e) {
      fail('CORRUPT_FILE', `tasks report: ${join(dir, f)} is not JSON: ${(e as Error).message}`);
    }
    if (isTaskRunResult(j)) runs.push(j);
  }
  if (!runs.length) fail('EMPTY_INPUT', `tasks report: no task results (format mamba-ts-task-run/1) in ${dir}`);
  const r = buildReport(runs, [stateTrackingSection(runs), stateSizeSection(runs)]);
  const out = v.out;
  if (out === undefined) {
    print(r.markdown + '\n');
    return;
  }
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, r.markdown + '\n');
  for (const p of r.plots) writeFileSync(join(dirname(out), `${p.name}.svg`), p.svg + '\n');
  print(`${out}\n${r.plots.map((p) => join(dirname(out), `${p.name}.svg`)).join('\n')}\n`);
}
