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
import { isTaskRunResult, type TaskRunResult } from '../tasks/results.js';
import { loadTaskCheckpoint, saveTaskCheckpoint } from '../tasks/checkpoint.js';
import {
  evaluate,
  evaluateLengths,
  newTrainLog,
  taskOptimizer,
  trainOnTask,
  type TrainOptions,
} from '../tasks/train.js';
import { num, oneOf, parse, type Options } from './args.js';

const RESULTS_DIR = 'bench/results/tasks';

const HELP = `mamba-ts tasks: the synthetic tasks of the Mamba paper and Zoology, any mixer, one engine

Usage:
  mamba-ts tasks run <task> --mixer <mixer> [options]   train, evaluate, write a results JSON
  mamba-ts tasks report [--in <dir>] [--out <file.md>]  results -> markdown tables + SVG plots

Tasks:
${TASKS.map((t) => `  ${t.padEnd(18)} ${TASK_DESCRIPTIONS[t]}`).join('\n')}

Mixers:
${MIXERS.map((m) => `  ${m.padEnd(12)} ${MIXER_DESCRIPTIONS[m]}`).join('\n')}

run options:
  --mixer <name>          the sequence mixer (required)
  --paper                 start from the paper's task settings instead of the small ones
  --seq-len <n>           training sequence length (small defaults: selective-copying 256,
                          induction-heads 64, mqar 64, parity 64; paper: 4096, 256, 256, 256)
  --vocab <n>             vocabulary (16, 16, 128, 2; paper 16, 16, 8192, 2)
  --count <n>             selective-copying: tokens to memorise (16); mqar: key-value pairs (4)
  --d-model <n>           model width (64)        --layers <n>    blocks (2)
  --d-state <n>           SSM state size (16)     --expand <n>    channel expansion (2)
  --heads <n>             attention heads (4)     --d-conv <n>    Mamba conv width (4)
  --max-context <n>       KV cache / Hyena history capacity for chunked evaluation (4096)
  --steps <n>             optimiser steps (2000)  --batch <n>     examples per step (16)
  --lr <x>                peak learning rate (1e-3)  --weight-decay <x> (0.1)
  --warmup <n>            warmup steps (10% of --steps)  --clip <x> gradient norm clip (1)
  --seed <n>              seed of weights and data (0)
  --eval-examples <n>     held-out examples for the final accuracy (512)
  --eval-every <n>        quick held-out check every n steps (250; 0: off)
  --stop-accuracy <x>     stop once a quick check reaches this accuracy (e.g. 1)
  --eval-lengths <list>   induction-heads, parity: test lengths, e.g. 64,128,...,16384 or 2^6..2^14
  --length-examples <n>   examples per test length (64; halved per doubling past 4096, at least 8)
  --out <file>            results JSON (default ${RESULTS_DIR}/<task>-<mixer>-d<d>-L<len>-s<seed>.json)
  --checkpoint <file>     save the model and optimiser there when training stops, and resume from it
                          if it exists (same options), so a long run can be split over several calls
  --time-limit <seconds>  stop training after this long in this call (saving --checkpoint); rerun the
                          same command to continue. The results JSON is written once all steps are done
  --quiet                 no progress lines

report options:
  --in <dir>              where the results JSON files are (default ${RESULTS_DIR})
  --out <file>            the markdown file (default: print to stdout); plots are written beside it
                          as <name>.svg
`;

const RUN_OPTIONS: Options = {
  mixer: { type: 'string' },
  paper: { type: 'boolean' },
  'seq-len': { type: 'string' },
  vocab: { type: 'string' },
  count: { type: 'string' },
  'd-model': { type: 'string' },
  layers: { type: 'string' },
  'd-state': { type: 'string' },
  expand: { type: 'string' },
  heads: { type: 'string' },
  'd-conv': { type: 'string' },
  'max-context': { type: 'string' },
  steps: { type: 'string' },
  batch: { type: 'string' },
  lr: { type: 'string' },
  'weight-decay': { type: 'string' },
  warmup: { type: 'string' },
  clip: { type: 'string' },
  seed: { type: 'string' },
  'eval-examples': { type: 'string' },
  'eval-every': { type: 'string' },
  'stop-accuracy': { type: 'string' },
  'eval-lengths': { type: 'string' },
  'length-examples': { type: 'string' },
  out: { type: 'string' },
  checkpoint: { type: 'string' },
  'time-limit': { type: 'string' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const REPORT_OPTIONS: Options = {
  in: { type: 'string' },
  out: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

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
  fail('BAD_ARGUMENT', `tasks: unknown subcommand "${sub}"; use run or report (see mamba-ts tasks --help)`);
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
  const { values: v, positionals } = parse('tasks run', argv, RUN_OPTIONS, true);
  if (v.help) {
    print(HELP);
    return;
  }
  if (positionals.length !== 1)
    fail(
      'BAD_ARGUMENT',
      `tasks run: give exactly one task (${TASKS.join(', ')}), got ${positionals.length ? positionals.join(' ') : 'none'}`,
    );
  const task = oneOf<TaskName>(positionals[0], 'task', TASKS, 'selective-copying');
  if (v.mixer === undefined) fail('BAD_ARGUMENT', `tasks run: --mixer is required (${MIXERS.join(', ')})`);
  const mixer = oneOf<MixerName>(v.mixer, 'mixer', MIXERS, 'mamba');
  const base = v.paper ? PAPER_SETTINGS[task] : SMALL_SETTINGS[task];
  const int = (k: string, d: number, min = 1): number => num(v[k], k, { int: true, min }) ?? d;
  const settings: TaskSettings = {
    seqLen: int('seq-len', base.seqLen, 3),
    vocabSize: int('vocab', base.vocabSize, 3),
    count: int('count', base.count),
  };
  const steps = int('steps', 2000);
  const model: TaskModelConfig = {
    ...DEFAULT_TASK_MODEL,
    mixer,
    vocabSize: settings.vocabSize,
    dModel: int('d-model', DEFAULT_TASK_MODEL.dModel),
    nLayer: int('layers', DEFAULT_TASK_MODEL.nLayer),
    dState: int('d-state', DEFAULT_TASK_MODEL.dState),
    expand: int('expand', DEFAULT_TASK_MODEL.expand),
    heads: int('heads', DEFAULT_TASK_MODEL.heads),
    dConv: int('d-conv', DEFAULT_TASK_MODEL.dConv),
    maxLength: settings.seqLen,
    maxContext: int('max-context', DEFAULT_TASK_MODEL.maxContext),
  };
  const stop = num(v['stop-accuracy'], 'stop-accuracy', { min: 0, max: 1 });
  const train: Omit<TrainOptions, 'log'> = {
    steps,
    batch: int('batch', 16),
    lr: num(v.lr, 'lr', { min: 0, minExclusive: true }) ?? 1e-3,
    weightDecay: num(v['weight-decay'], 'weight-decay', { min: 0 }) ?? 0.1,
    warmup: int('warmup', Math.max(1, Math.round(steps / 10)), 0),
    clipNorm: num(v.clip, 'clip', { min: 0 }) ?? 1,
    seed: int('seed', 0, 0),
    evalEvery: int('eval-every', 250, 0),
    evalExamples: int('eval-examples', 512),
    logEvery: Math.max(1, Math.min(50, Math.round(steps / 20))),
    ...(stop !== undefined ? { stopAccuracy: stop } : {}),
  };
  const lengths = typeof v['eval-lengths'] === 'string' ? parseLengths(v['eval-lengths']) : [];
  if (lengths.length && task !== 'induction-heads' && task !== 'parity')
    fail('BAD_ARGUMENT', '--eval-lengths is for induction-heads and parity (scored at the last position)');
  const perLength = int('length-examples', 64);
  const quiet = !!v.quiet;
  const log = quiet
    ? undefined
    : (line: string): void => {
        process.stderr.write(line + '\n');
      };
  const out =
    typeof v.out === 'string'
      ? v.out
      : join(RESULTS_DIR, `${task}-${mixer}-d${model.dModel}-L${settings.seqLen}-s${train.seed}.json`);

  const timeLimit = num(v['time-limit'], 'time-limit', { min: 0, minExclusive: true });
  const checkpoint = typeof v.checkpoint === 'string' ? v.checkpoint : undefined;
  if (timeLimit !== undefined && !checkpoint)
    fail('BAD_ARGUMENT', '--time-limit needs --checkpoint (where the stopped run is kept to be resumed)');

  const bk = cpu();
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
}

async function reportCommand(argv: string[], print: Print): Promise<void> {
  const { values: v } = parse('tasks report', argv, REPORT_OPTIONS);
  if (v.help) {
    print(HELP);
    return;
  }
  const dir = typeof v.in === 'string' ? v.in : RESULTS_DIR;
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
  const r = buildReport(runs);
  if (typeof v.out !== 'string') {
    print(r.markdown + '\n');
    return;
  }
  mkdirSync(dirname(v.out), { recursive: true });
  writeFileSync(v.out, r.markdown + '\n');
  for (const p of r.plots) writeFileSync(join(dirname(v.out), `${p.name}.svg`), p.svg + '\n');
  print(`${v.out}\n${r.plots.map((p) => join(dirname(v.out as string), `${p.name}.svg`)).join('\n')}\n`);
}
