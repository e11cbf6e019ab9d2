import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { cpu } from '../backend/cpu/cpu-backend.js';
import { fail } from '../errors.js';
import { bitsPerByte, brownByteCorpus, newLmLog, trainLmSlice, type LmLog, type LmTrainOptions } from '../tasks/lm.js';
import { buildTaskModel, DEFAULT_TASK_MODEL, MIXERS, type MixerName, type TaskModelConfig } from '../tasks/models.js';
import { taskOptimizer } from '../tasks/train.js';
import { HELP_OPTION, helpText, parse, type CommandSpec } from './args.js';
import { BACKEND_OPTIONS, backendFromArgs } from './common.js';

const M = DEFAULT_TASK_MODEL;

/** `tasks lm`: mixers compared on byte-level language modelling of the Brown corpus at equal training time. */
export const TASKS_LM = {
  name: 'tasks lm',
  summary: 'byte-level language modelling on the Brown corpus, several mixers at equal training time',
  usage: ['mamba-ts tasks lm --mixers <name[:d_model],...> --seconds <s> [options]'],
  options: {
    mixers: {
      type: 'string',
      arg: '<list>',
      nonEmpty: true,
      help: `mixers to compare, each optionally with its own width (e.g. mamba3,mamba2,mamba:120); any of ${MIXERS.join(', ')}`,
    },
    seconds: {
      type: 'number',
      min: 0,
      minExclusive: true,
      help: "training seconds per mixer (the schedule's span; evaluation is not counted)",
    },
    slice: {
      type: 'number',
      min: 0,
      minExclusive: true,
      default: 15,
      help: 'the mixers take turns in slices of this many training seconds, so load on the machine hits all alike',
    },
    'd-model': { type: 'int', min: 1, default: 128, help: 'model width (unless a mixer names its own)' },
    layers: { type: 'int', min: 1, default: 4, help: 'blocks' },
    'd-state': { type: 'int', min: 1, default: M.dState, help: 'SSM state size' },
    expand: { type: 'int', min: 1, default: M.expand, help: 'channel expansion' },
    heads: { type: 'int', min: 1, default: M.heads, help: 'heads of attention, Mamba-2 and Mamba-3' },
    'seq-len': { type: 'int', min: 2, default: 256, help: 'training and validation window (bytes)' },
    batch: { type: 'int', min: 1, default: 16, help: 'windows per step' },
    lr: { type: 'number', min: 0, minExclusive: true, default: 2e-3, help: 'peak learning rate' },
    'weight-decay': { type: 'number', min: 0, default: 0.1, help: 'AdamW weight decay' },
    'warmup-share': {
      type: 'number',
      min: 0,
      max: 1,
      default: 0.05,
      help: 'share of the training time spent warming the learning rate up',
    },
    clip: { type: 'number', min: 0, default: 1, help: 'gradient norm clip' },
    seed: { type: 'int', min: 0, default: 0, help: 'seed of weights and data' },
    'eval-bytes': {
      type: 'int',
      min: 2,
      default: 65536,
      help: 'held-out bytes scored for bits per byte (after every round)',
    },
    out: { type: 'string', arg: '<file>', nonEmpty: true, help: 'results JSON (default: print only)' },
    quiet: { type: 'boolean', help: 'no progress lines' },
    ...BACKEND_OPTIONS,
    ...HELP_OPTION,
  },
} as const satisfies CommandSpec;

export const TASKS_LM_HELP = helpText(TASKS_LM);

/** One entry of --mixers: "mamba3" or "mamba:120". */
export function parseMixerList(v: string, dModel: number): { mixer: MixerName; dModel: number }[] {
  const out = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s)
    .map((s) => {
      const [name, width, extra] = s.split(':');
      if (extra !== undefined || !(MIXERS as readonly string[]).includes(name))
        fail('BAD_ARGUMENT', `--mixers: "${s}" is not <mixer>[:<d_model>] with a mixer of ${MIXERS.join(', ')}`);
      const d = width === undefined ? dModel : Number(width);
      if (!(Number.isInteger(d) && d >= 1))
        fail('BAD_ARGUMENT', `--mixers: "${s}": the width must be a positive integer`);
      return { mixer: name as MixerName, dModel: d };
    });
  if (!out.length) fail('BAD_ARGUMENT', '--mixers: give at least one mixer');
  return out;
}

export interface LmRunResult {
  format: 'mamba-ts-lm-run/1';
  command: string;
  corpus: { source: string; trainBytes: number; validBytes: number; documents: { train: number; valid: number } };
  train: LmTrainOptions & { weightDecay: number; slice: number };
  runs: {
    mixer: MixerName;
    model: TaskModelConfig;
    parameters: number;
    steps: number;
    trainSeconds: number;
    /** Validation bits per byte after training (and before: the untrained model). */
    validBitsPerByte: number;
    initialBitsPerByte: number;
    /** (training seconds, steps, validation bits per byte) after each round. */
    curve: [number, number, number][];
    loss: LmLog['loss'];
  }[];
  evalBytes: number;
  machine: { cpu: string; cores: number; node: string; backend: string; loadavg: [number[], number[]] };
  date: string;
}

export async function lmCommand(argv: string[], print: (text: string) => void, help: string): Promise<void> {
  const { help: wantHelp, values: v } = parse(TASKS_LM, argv);
  if (wantHelp) {
    print(help);
    return;
  }
  const list = parseMixerList(v.mixers ?? fail('BAD_ARGUMENT', 'tasks lm: --mixers is required'), v['d-model']);
  const seconds = v.seconds ?? fail('BAD_ARGUMENT', 'tasks lm: --seconds is required (training time per mixer)');
  const load0 = loadavg();
  const log = v.quiet
    ? undefined
    : (line: string): void => {
        process.stderr.write(line + '\n');
      };
  const corpus = brownByteCorpus();
  const o: LmTrainOptions = {
    seqLen: v['seq-len'],
    batch: v.batch,
    lr: v.lr,
    seconds,
    warmupShare: v['warmup-share'],
    clipNorm: v.clip,
    seed: v.seed,
  };
  // the CPU engine single-threaded unless --threads is given, as the task runs
  const bk =
    v.backend === 'cpu' && v.threads === undefined
      ? cpu()
      : await backendFromArgs({ backend: v.backend, threads: v.threads });
  const evalBytes = v['eval-bytes'];
  const runs = [];
  for (const { mixer, dModel } of list) {
    const model: TaskModelConfig = {
      ...DEFAULT_TASK_MODEL,
      mixer,
      vocabSize: 256,
      dModel,
      nLayer: v.layers,
      dState: v['d-state'],
      expand: v.expand,
      heads: v.heads,
      maxLength: o.seqLen,
    };
    const lm = buildTaskModel(model, bk, o.seed);
    const opt = taskOptimizer(lm, { weightDecay: v['weight-decay'] });
    const initial = await bitsPerByte(lm, corpus.valid, o.seqLen, evalBytes, o.batch);
    log?.(
      `${mixer} d_model ${dModel}: ${lm.parameterCount()} parameters, untrained ${initial.bitsPerByte.toFixed(3)} bits/byte`,
    );
    runs.push({
      mixer,
      model,
      lm,
      opt,
      log: newLmLog(),
      initial: initial.bitsPerByte,
      curve: [] as [number, number, number][],
    });
  }
  log?.(
    `Brown corpus: ${corpus.train.length} training bytes (${corpus.documents.train} samples), ${corpus.valid.length} held out; ` +
      `${seconds} s each, in slices of ${v.slice} s`,
  );
  while (runs.some((r) => r.log.seconds < seconds)) {
    for (const r of runs) {
      if (r.log.seconds >= seconds) continue;
      await trainLmSlice(r.lm, r.opt, corpus, o, r.log, v.slice);
      const bpb = (await bitsPerByte(r.lm, corpus.valid, o.seqLen, evalBytes, o.batch)).bitsPerByte;
      r.curve.push([r.log.seconds, r.log.steps, bpb]);
      log?.(
        `  ${r.mixer.padEnd(11)} ${r.log.seconds.toFixed(0).padStart(5)} s  step ${r.log.steps}  valid ${bpb.toFixed(4)} bits/byte`,
      );
    }
  }
  const result: LmRunResult = {
    format: 'mamba-ts-lm-run/1',
    command: ['mamba-ts', 'tasks', 'lm', ...argv].join(' '),
    corpus: {
      source: corpus.source,
      trainBytes: corpus.train.length,
      validBytes: corpus.valid.length,
      documents: corpus.documents,
    },
    train: { ...o, weightDecay: v['weight-decay'], slice: v.slice },
    runs: runs.map((r) => ({
      mixer: r.mixer,
      model: r.model,
      parameters: r.lm.parameterCount(),
      steps: r.log.steps,
      trainSeconds: r.log.seconds,
      validBitsPerByte: r.curve[r.curve.length - 1][2],
      initialBitsPerByte: r.initial,
      curve: r.curve,
      loss: r.log.loss,
    })),
    evalBytes,
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      node: process.version,
      backend: bk.name,
      loadavg: [load0, loadavg()],
    },
    date: new Date().toISOString(),
  };
  const table = [
    '| mixer | d_model | parameters | steps | training s | valid bits/byte |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...result.runs.map(
      (r) =>
        `| ${r.mixer} | ${r.model.dModel} | ${r.parameters} | ${r.steps} | ${r.trainSeconds.toFixed(0)} | ${r.validBitsPerByte.toFixed(4)} |`,
    ),
  ].join('\n');
  print(table + '\n');
  if (v.out !== undefined) {
    mkdirSync(dirname(v.out), { recursive: true });
    writeFileSync(v.out, JSON.stringify(result, null, 1) + '\n');
    print(`${v.out}\n`);
  }
}
