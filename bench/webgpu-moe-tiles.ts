/**
 * The tiles of the sparse mixture of experts' products on WebGPU, by form: each thread's 4 x 4 block in
 * a private array indexed by loop counters (`matmulRegisters: false`: moe-expert-matmul.wgsl `main`,
 * moe-train.wgsl `dx`, `dw`) against named registers (the default: `regs`, `dxRegs`, `dwRegs`), on one
 * expert projection in Granite 4.0-H tiny's shape (hidden 1536, 64 experts, top-6, expert width 512),
 * every dimension divided by --divide: the forward product over the routed pairs (the up projection,
 * the tokens' rows gathered), its gradient in the input (dx, per pair) and in the experts' stack (dw).
 * The two forms alternate (A B A B ...) --rounds times; the median of each. GPU time from timestamp
 * queries (median of --reps), else wall clock per call, synced. Also the largest difference between the
 * two forms' results (0: the same bits).
 *   node dist/bench/webgpu-moe-tiles.js [--m 512] [--divide 1] [--reps 5] [--rounds 3] [--out DIR]
 * Writes webgpu-moe-tiles.json (machine, command, rows) into --out (default bench/results).
 */
import type { WebGpuBackend } from '../src/backend/webgpu/webgpu-backend.js';
import type { MoePairs } from '../src/backend/contract/moe-train.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { backend, machine, random, table, timeCalls, writeResult } from './webgpu-common.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
  return v;
}
for (const a of process.argv.slice(2))
  if (a.startsWith('--') && !['m', 'divide', 'reps', 'rounds', 'out'].includes(a.slice(2)))
    throw new Error(`unknown option ${a}; options: --m --divide --reps --rounds --out`);
const divide = Number(arg('divide', '1'));
const m = Number(arg('m', '512'));
const reps = Number(arg('reps', '5'));
const rounds = Number(arg('rounds', '3'));
const out = process.argv.includes('--out') ? arg('out', '') : undefined;
const d = Math.ceil(1536 / divide),
  I = Math.ceil(512 / divide),
  E = Math.max(8, Math.ceil(64 / divide)),
  K = 6;

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Dense routing weights (m, E): K distinct experts per row, spread unevenly (a deterministic hash). */
function routing(): Float32Array {
  const w = new Float32Array(m * E);
  for (let r = 0; r < m; r++) {
    let e = (Math.imul(r, 2654435761) >>> 0) % E;
    for (let s = 0; s < K; s++, e = (e + 1 + (r % 3)) % E) {
      while (w[r * E + e] !== 0) e = (e + 1) % E;
      w[r * E + e] = 0.1 + ((r * 7 + s * 3) % 10) / 20;
    }
  }
  return w;
}

interface Form {
  name: string;
  bk: WebGpuBackend;
  x: Tensor; // (m, d) tokens
  xp: Tensor; // (m·K, d) a row per pair (the input of dx per pair; not read by its kernel)
  w: Tensor; // (E·I, d) the up stack
  g: Tensor; // (m·K, I) the output's gradient
  pairs: MoePairs;
  o: Tensor; // (m·K, I)
  dA: Tensor; // (m·K, d) per pair
  dW: Tensor; // (E·I, d)
}
const dense = routing();
const forms: Form[] = [];
for (const [name, matmulRegisters] of [
  ['loop form', false],
  ['registers', true],
] as const) {
  const bk = await backend({ matmulRegisters });
  const pairs = bk.moePairs(bk.upload(dense, [m, E]), K);
  forms.push({
    name,
    bk,
    x: random(bk, [m, d], -1, 1, 1),
    xp: random(bk, [m * K, d], -1, 1, 4),
    w: random(bk, [E * I, d], -1, 1, 2),
    g: random(bk, [m * K, I], -1, 1, 3),
    pairs,
    o: bk.alloc([m * K, I]),
    dA: bk.alloc([m * K, d]),
    dW: bk.alloc([E * I, d]),
  });
}
const steps: [string, string, (f: Form) => void, (f: Form) => Tensor][] = [
  [
    'forward (up, gathered rows)',
    'moeExpertMatmul',
    (f) => f.bk.moeExpertProduct({ out: f.o, a: f.x, w: f.w, pairs: f.pairs, gather: true }),
    (f) => f.o,
  ],
  [
    'dx (per pair)',
    'moeTrainDx',
    (f) =>
      f.bk.moeExpertProductBackward({ dA: f.dA, dW: null, g: f.g, a: f.xp, w: f.w, pairs: f.pairs, gather: false }),
    (f) => f.dA,
  ],
  [
    'dw (the stack)',
    'moeTrainDw',
    (f) => f.bk.moeExpertProductBackward({ dA: null, dW: f.dW, g: f.g, a: f.x, w: f.w, pairs: f.pairs, gather: true }),
    (f) => f.dW,
  ],
];
const rows: (string | number)[][] = [
  ['step', `(m ${m}, d ${d}, E ${E}, top-${K}, I ${I})`, ...forms.map((f) => `${f.name} ms`), 'speed-up', 'max |diff|'],
];
const results: Record<string, unknown>[] = [];
try {
  for (const [name, kernel, run, result] of steps) {
    const times: number[][] = forms.map(() => []);
    for (const f of forms) run(f); // compile
    for (let round = 0; round < rounds; round++)
      for (let i = 0; i < forms.length; i++) {
        const t = await timeCalls(
          forms[i].bk,
          () => run(forms[i]),
          (k) => k.startsWith(kernel),
          reps,
        );
        times[i].push(Number.isFinite(t.gpuMs) ? t.gpuMs : t.wallMs);
      }
    const ms = times.map(median);
    const outs = await Promise.all(forms.map(async (f) => (await result(f).read()) as Float32Array));
    let diff = 0;
    for (let i = 0; i < outs[0].length; i++) diff = Math.max(diff, Math.abs(outs[0][i] - outs[1][i]));
    results.push({
      step: name,
      m,
      d,
      E,
      K,
      I,
      ms: Object.fromEntries(forms.map((f, i) => [f.name, ms[i]])),
      maxDiff: diff,
    });
    rows.push([name, '', ...ms.map((x) => x.toFixed(3)), (ms[0] / ms[1]).toFixed(2) + 'x', diff.toExponential(1)]);
    console.log(rows[rows.length - 1].join('  '));
  }
  console.log(table(rows));
  console.log(
    'wrote',
    writeResult(
      'webgpu-moe-tiles',
      {
        machine: machine(forms[0].bk),
        command: `node dist/bench/webgpu-moe-tiles.js ${process.argv.slice(2).join(' ')}`.trim(),
        results,
      },
      out,
    ),
  );
} finally {
  for (const f of forms) f.bk.dispose();
}
