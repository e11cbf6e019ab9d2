/**
 * Cost per token against context, Mamba vs attention in this engine (docs/experiments.md §5):
 *  1. decode: time per generated token and the recurrent state's memory after c tokens of context,
 *     c = 1 .. 131072. Mamba's state is the same few kilobytes whatever c; attention's KV cache holds
 *     2·c·d floats per layer and each token reads all of it. The attention cache is filled with random
 *     keys and values (and its length set to c) instead of prefilling c tokens: the step's work and
 *     memory traffic depend only on c, not on what the cached rows hold.
 *  2. training throughput (forward + backward + AdamW, tokens/s) at equal parameter count: attention
 *     gets 1.5x the layers of Mamba (a Mamba block holds ~6d² weights, an attention block 4d²).
 * The default CPU backend (`cpu()`: the WebAssembly SIMD kernels where the engine has SIMD128, the
 * TypeScript kernels for the rest, e.g. attention), on one thread. Each step is timed twice: wall
 * clock, and this process's CPU time (process.cpuUsage), which on a machine shared with other work
 * excludes the time the process waited for a core; the tables and the plot use CPU time, the JSON
 * keeps both and the load average.
 *
 * Usage: node dist/bench/context-cost.js [options], or mamba-ts bench context-cost [options]
 *        (options and defaults: --help; one table in src/cli/bench-suites.ts); --from <json> only redraws
 *        the plot and the markdown tables of an earlier run.
 * Writes the JSON (default: a new bench/results/context-cost-<date>.json), the plot (default: beside the
 * JSON, .svg; docs/context-cost.svg is the committed one) and the markdown tables beside the JSON (.md).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { numberList } from '../src/cli/args.js';
import { benchArgs, resultFile } from '../src/cli/bench-suites.js';
import { backward } from '../src/autograd/backward.js';
import { cpu } from '../src/backend/cpu/cpu-backend.js';
import { Rng } from '../src/mixers/init.js';
import * as F from '../src/ops/ops.js';
import {
  buildTaskModel,
  DEFAULT_TASK_MODEL,
  type TaskLanguageModel,
  type TaskModelConfig,
} from '../src/tasks/models.js';
import { taskOptimizer } from '../src/tasks/train.js';
import { optimizerStep } from '../src/train/optimizer.js';
import { scope } from '../src/tensor/scope.js';
import { timeSteps } from './step-timing.js';

const a = benchArgs('context-cost');
const d = a['d-model'],
  layers = a.layers,
  heads = a.heads,
  V = a.vocab;
const contexts = numberList(a.contexts, 'contexts', { int: true, min: 1 });
const trainLengths = numberList(a['train-lengths'], 'train-lengths', { int: true, min: 1 });
const steps = a.steps,
  trainBatch = a['train-batch'];
const maxC = Math.max(...contexts, 64) + steps + 4; // 64: the warm-up below
const bk = cpu();

const base = { ...DEFAULT_TASK_MODEL, vocabSize: V, dModel: d, nLayer: layers, heads, maxLength: 1024 };
const mambaCfg: TaskModelConfig = { ...base, mixer: 'mamba' };
const attnCfg: TaskModelConfig = { ...base, mixer: 'attention', maxContext: maxC };

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

interface DecodePoint {
  context: number;
  msPerToken: number;
  cpuMsPerToken: number;
  stateBytes: number;
}

/** Median time of `steps` decode steps after the state has seen `context` tokens. */
function decodeAt(m: TaskLanguageModel, context: number): DecodePoint {
  const st = m.initState(1);
  const rng = new Rng(context);
  let bytes = 0;
  if (m.config.mixer === 'attention') {
    for (const layer of st.layers) {
      const k = layer.k!.storage as Float32Array,
        v = layer.v!.storage as Float32Array;
      for (let i = 0; i < context * d; i++) {
        k[i] = rng.normal();
        v[i] = rng.normal();
      }
      (layer.length!.storage as Float32Array)[0] = context;
      bytes += 2 * context * d * 4;
    }
  } else {
    bytes = st.bytes; // conv + ssm: independent of the context
  }
  st.position = context;
  const t = timeSteps(steps, (i) => {
    m.stepIds([i % V], st);
  });
  st.dispose();
  return { context, ...t, stateBytes: bytes };
}

interface TrainPoint {
  length: number;
  tokensPerSecond: number;
  secondsPerStep: number;
  tokensPerCpuSecond: number;
}

function trainAt(m: TaskLanguageModel, length: number): Promise<TrainPoint> {
  return (async () => {
    const opt = taskOptimizer(m, { weightDecay: 0.1 });
    const rng = new Rng(length);
    const times: number[] = [],
      cpuTimes: number[] = [];
    const n = Math.max(3, Math.min(steps, Math.round(8192 / length)));
    for (let i = 0; i < n + 1; i++) {
      const ids = Int32Array.from({ length: trainBatch * length }, () => rng.int(V));
      const t0 = performance.now(),
        c0 = process.cpuUsage();
      scope(() => {
        const logits = m.forward(bk.upload(ids, [trainBatch, length], 'i32'));
        backward(F.crossEntropy(logits, bk.upload(ids, [trainBatch, length], 'i32')));
      });
      await optimizerStep(m, opt, 1e-4, 1);
      const c = process.cpuUsage(c0);
      if (i > 0) {
        times.push(performance.now() - t0);
        cpuTimes.push((c.user + c.system) / 1e6);
      }
    }
    const s = median(times) / 1000;
    return {
      length,
      tokensPerSecond: (trainBatch * length) / s,
      secondsPerStep: s,
      tokensPerCpuSecond: (trainBatch * length) / median(cpuTimes),
    };
  })();
}

type Results = {
  format: string;
  command: string;
  config: {
    dModel: number;
    layers: number;
    heads: number;
    vocab: number;
    dState: number;
    expand: number;
    steps: number;
    trainBatch: number;
  };
  parameters: { mamba: number; attention: number };
  decode: { mamba: DecodePoint[]; attention: DecodePoint[] };
  train: {
    mamba: { layers: number; parameters: number; points: TrainPoint[] };
    attention: { layers: number; parameters: number; points: TrainPoint[] };
  };
  machine: { cpu: string; cores: number; node: string; loadAverageAtStart: number; kernels?: string };
  date: string;
};
if (a.from) {
  const prev = JSON.parse(readFileSync(a.from, 'utf8')) as Results;
  writeOutputs(prev, a.from);
  process.exit(0);
}

const mamba = buildTaskModel(mambaCfg, bk, 1);
const attn = buildTaskModel(attnCfg, bk, 1);
// Warm up the JIT on both step paths before timing anything.
decodeAt(mamba, 1);
decodeAt(mamba, 1);
decodeAt(attn, 64);
decodeAt(attn, 64);
const out: Results = {
  format: 'mamba-ts-context-cost/1',
  command: ['node', 'dist/bench/context-cost.js', ...process.argv.slice(2)].join(' '),
  config: { dModel: d, layers, heads, vocab: V, dState: base.dState, expand: base.expand, steps, trainBatch },
  parameters: { mamba: mamba.parameterCount(), attention: attn.parameterCount() },
  decode: { mamba: [], attention: [] },
  train: { mamba: { layers, parameters: 0, points: [] }, attention: { layers: 0, parameters: 0, points: [] } },
  machine: {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    node: process.version,
    loadAverageAtStart: loadavg()[0],
    kernels: bk.kernels,
  },
  date: new Date().toISOString(),
};
for (const c of contexts) {
  for (const [name, m] of [
    ['mamba', mamba],
    ['attention', attn],
  ] as const) {
    const p = decodeAt(m, c);
    out.decode[name].push(p);
    console.log(
      `decode ${name.padEnd(9)} context ${String(c).padStart(6)}: ${p.cpuMsPerToken.toFixed(2)} ms/token CPU (${p.msPerToken.toFixed(2)} wall), state ${(p.stateBytes / 1024).toFixed(1)} KiB`,
    );
  }
}
// Training at equal parameter count: attention with 1.5x the layers.
const attnLayers = Math.round(layers * 1.5);
const attnTrain = buildTaskModel({ ...attnCfg, nLayer: attnLayers, maxContext: 16 }, bk, 2);
out.train.mamba.parameters = mamba.parameterCount();
out.train.attention = { layers: attnLayers, parameters: attnTrain.parameterCount(), points: [] };
for (const L of trainLengths) {
  for (const [name, m] of [
    ['mamba', mamba],
    ['attention', attnTrain],
  ] as const) {
    const p = await trainAt(m, L);
    out.train[name].points.push(p);
    console.log(
      `train  ${name.padEnd(9)} length ${String(L).padStart(5)}: ${p.tokensPerCpuSecond.toFixed(0)} tokens per CPU second (${p.tokensPerSecond.toFixed(0)} per wall second)`,
    );
  }
}
const file = resultFile('context-cost', a.out);
writeFileSync(file, JSON.stringify(out, null, 1) + '\n');
writeOutputs(out, file);

function writeOutputs(o: Results, json: string): void {
  const svg = a.svg ?? json.replace(/\.json$/, '') + '.svg';
  mkdirSync(dirname(svg), { recursive: true });
  writeFileSync(svg, logLogPlot(o.decode));
  const md = json.replace(/\.json$/, '') + '.md';
  writeFileSync(md, markdownTables(o));
  console.log(`${json}\n${svg}\n${md}`);
}

/** The decode and training tables for docs/experiments.md. */
function markdownTables(o: Results): string {
  const kib = (b: number): string =>
    b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`;
  const lines = [
    `Decode, batch 1, d_model ${o.config.dModel}, ${o.config.layers} layers (Mamba ${o.parameters.mamba} parameters, attention ${o.parameters.attention}); CPU milliseconds per token, median of ${o.config.steps} steps.`,
    '',
    '| context (tokens) | Mamba ms/token | attention ms/token | Mamba state | attention KV cache |',
    '| --- | --- | --- | --- | --- |',
  ];
  o.decode.mamba.forEach((m, i) => {
    const at = o.decode.attention[i];
    lines.push(
      `| ${m.context} | ${m.cpuMsPerToken.toFixed(1)} | ${at.cpuMsPerToken.toFixed(1)} | ${kib(m.stateBytes)} | ${kib(at.stateBytes)} |`,
    );
  });
  lines.push(
    '',
    `Training (forward + backward + AdamW), batch ${o.config.trainBatch}: Mamba ${o.config.layers} layers (${o.train.mamba.parameters} parameters) vs attention ${o.train.attention.layers} layers (${o.train.attention.parameters} parameters).`,
    '',
    '| sequence length | Mamba tokens per CPU second | attention tokens per CPU second |',
    '| --- | --- | --- |',
  );
  o.train.mamba.points.forEach((m, i) =>
    lines.push(
      `| ${m.length} | ${m.tokensPerCpuSecond.toFixed(0)} | ${o.train.attention.points[i].tokensPerCpuSecond.toFixed(0)} |`,
    ),
  );
  return lines.join('\n') + '\n';
}

/** Two log-log panels: ms per token and state KiB against context. */
function logLogPlot(dec: { mamba: DecodePoint[]; attention: DecodePoint[] }): string {
  const W = 760,
    H = 340,
    panel = 330,
    L = 60,
    T = 40,
    B = 50;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
  ];
  const panelOf = (x0: number, title: string, get: (p: DecodePoint) => number, unit: string): void => {
    const all = [...dec.mamba, ...dec.attention];
    const cx = all.map((p) => Math.log10(Math.max(1, p.context))),
      cy = all.map((p) => Math.log10(Math.max(1e-3, get(p))));
    const xa = Math.floor(Math.min(...cx)),
      xb = Math.ceil(Math.max(...cx)),
      ya = Math.floor(Math.min(...cy)),
      yb = Math.ceil(Math.max(...cy));
    const px = (v: number): number => x0 + L + ((v - xa) / Math.max(1, xb - xa)) * (panel - L - 10);
    const py = (v: number): number => T + (1 - (v - ya) / Math.max(1, yb - ya)) * (H - T - B);
    parts.push(`<text x="${x0 + panel / 2 + 20}" y="22" text-anchor="middle" font-size="14">${title}</text>`);
    for (let y = ya; y <= yb; y++)
      parts.push(
        `<line x1="${px(xa)}" x2="${px(xb)}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/><text x="${px(xa) - 6}" y="${py(y) + 4}" text-anchor="end">1e${y}</text>`,
      );
    for (let x = xa; x <= xb; x++)
      parts.push(`<text x="${px(x)}" y="${py(ya) + 18}" text-anchor="middle">1e${x}</text>`);
    parts.push(
      `<line x1="${px(xa)}" x2="${px(xb)}" y1="${py(ya)}" y2="${py(ya)}" stroke="black"/><line x1="${px(xa)}" x2="${px(xa)}" y1="${T}" y2="${py(ya)}" stroke="black"/>`,
    );
    parts.push(
      `<text x="${x0 + panel / 2 + 20}" y="${H - 10}" text-anchor="middle">context (tokens)</text><text transform="translate(${x0 + 14} ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${unit}</text>`,
    );
    for (const [name, pts, color] of [
      ['mamba', dec.mamba, '#1f77b4'],
      ['attention', dec.attention, '#d62728'],
    ] as const) {
      parts.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${px(Math.log10(Math.max(1, p.context))).toFixed(1)},${py(Math.log10(Math.max(1e-3, get(p)))).toFixed(1)}`).join(' ')}"/>`,
      );
      const lp = pts[pts.length - 1];
      if (lp)
        parts.push(
          `<text x="${px(Math.log10(Math.max(1, lp.context))) - 4}" y="${py(Math.log10(Math.max(1e-3, get(lp)))) - 6}" text-anchor="end" fill="${color}">${name}</text>`,
        );
    }
  };
  panelOf(0, 'decode CPU time per token', (p) => p.cpuMsPerToken, 'ms / token');
  panelOf(panel + 60, 'recurrent state / KV cache', (p) => p.stateBytes / 1024, 'KiB');
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
