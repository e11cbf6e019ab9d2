/**
 * Mamba-3's scan alone on the CPU (the kernel, not the layer: in_proj, conv-free, out_proj excluded):
 * WebAssembly (mamba3.wat) against the TypeScript reference, and Mamba-2's SSD step (ssd.wat) at the same
 * width, one thread, batch 1. The decode step (l = 1 from a random state) is timed as the minimum over
 * `--batches` batches of `--calls` calls (the minimum: on a shared machine it is the run least disturbed);
 * a sequence of `--length` tokens as the minimum of `--seq-reps` calls. Shapes: mamba2-130m's width
 * (d_inner 1536 = 24 heads of 64) by default; Mamba-3 at rope_fraction 0.5 (S = n/4), SISO with neighbour
 * pairs, MIMO rank 4 with halves, as bench/mamba3-decode.ts builds them.
 *
 *   npx tsc -p . && node dist/bench/mamba3-scan.js [--heads 24] [--headdim 64] [--length 512]
 *     [--calls 20] [--batches 15] [--seq-reps 3] [--ts-seq true] [--out FILE]
 * Writes JSON (machine, load averages, command, every figure) to bench/results/mamba3-scan-<time>.json.
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import type { SsdScanArgs } from '../src/backend/contract/inference.js';
import { mamba3ProjWidth, type Mamba3Dims, type Mamba3ScanArgs } from '../src/backend/contract/mamba3.js';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { simdLevel } from '../src/backend/cpu/wasm/module.js';
import { resultFile } from '../src/cli/bench-suites.js';
import { table } from './webgpu-common.js';

const { values: o } = parseArgs({
  options: {
    heads: { type: 'string', default: '24' },
    headdim: { type: 'string', default: '64' },
    length: { type: 'string', default: '512' },
    calls: { type: 'string', default: '20' },
    batches: { type: 'string', default: '15' },
    'seq-reps': { type: 'string', default: '3' },
    'ts-seq': { type: 'string', default: 'true' },
    out: { type: 'string' },
  },
});
const h = Number(o.heads),
  p = Number(o.headdim),
  L = Number(o.length),
  calls = Number(o.calls),
  batches = Number(o.batches),
  seqReps = Number(o['seq-reps']);

const wasm = new CpuBackend({ kernels: 'wasm' });
const ts = new CpuBackend({ kernels: 'ts' });
if (wasm.kernels !== 'wasm') throw new Error('this engine does not run the WebAssembly kernels');

let seed = 7;
function rand(n: number, scale: number, shift = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    a[i] = ((seed / 2 ** 32) * 2 - 1) * scale + shift;
  }
  return a;
}

/** Rotation angles at rope_fraction 0.5. */
const S = (n: number): number => n / 4;

/** The scan's arguments on a backend: proj of l tokens, random parameters and state. */
function mamba3Args(bk: CpuBackend, n: number, R: number, l: number): Mamba3ScanArgs {
  const dims: Mamba3Dims = { h, p, n, g: 1, R, S: S(n), aFloor: 1e-4, rotateHalves: R > 1, eps: 1e-5 };
  const up = (shape: number[], scale = 1, shift = 0): ReturnType<CpuBackend['upload']> =>
    bk.upload(
      rand(
        shape.reduce((x, y) => x * y, 1),
        scale,
        shift,
      ),
      shape,
    );
  const mimo = R > 1;
  return {
    y: bk.alloc([1, l, h * p]),
    proj: up([1, l, mamba3ProjWidth(dims)]),
    dtBias: up([h], 0.5, -0.5),
    BNorm: up([n], 0.1, 1),
    CNorm: up([n], 0.1, 1),
    BBias: up([h, R, n], 0.3, 1),
    CBias: up([h, R, n], 0.3, 1),
    D: up([h]),
    mimoX: mimo ? up([h, R, p], 0.3, 0.5) : null,
    mimoZ: mimo ? up([h, R, p], 0.3, 1) : null,
    mimoO: mimo ? up([h, R, p], 0.3, 0.5) : null,
    normWeight: null,
    state: { theta: up([1, h, S(n)], 3), ssm: up([1, h, p, n], 0.1), k: up([1, R, h, n]), x: up([1, h, p]) },
    dims,
  };
}

function ssdStepArgs(bk: CpuBackend, n: number): SsdScanArgs {
  const e = h * p;
  const h0 = bk.upload(rand(h * p * n, 0.1), [1, h, p, n]);
  return {
    y: bk.alloc([1, 1, e]),
    x: bk.upload(rand(e, 1), [1, 1, e]),
    dt: bk.upload(rand(h, 1), [1, 1, h]),
    A: bk.upload(rand(h, 0.5, -1), [h]),
    B: bk.upload(rand(n, 1), [1, 1, n]),
    C: bk.upload(rand(n, 1), [1, 1, n]),
    D: bk.upload(rand(h, 1), [h]),
    dtBias: bk.upload(rand(h, 0.5), [h]),
    dtSoftplus: true,
    dtLimit: [0, Infinity],
    nGroups: 1,
    chunkSize: 256,
    h0,
    hOut: h0,
  };
}

/** Microseconds per call: the minimum over `nb` batches of `nc` calls (after one batch of warm-up). */
function time(f: () => void, nb: number, nc: number): number {
  for (let i = 0; i < nc; i++) f();
  let best = Infinity;
  for (let k = 0; k < nb; k++) {
    const t0 = performance.now();
    for (let i = 0; i < nc; i++) f();
    best = Math.min(best, ((performance.now() - t0) / nc) * 1000);
  }
  return best;
}

const load0 = loadavg();
const rows: Record<string, number | string>[] = [];
for (const [name, n, R] of [
  ['mamba3-128', 128, 1],
  ['mamba3-64', 64, 1],
  ['mimo4-128', 128, 4],
  ['mimo4-64', 64, 4],
] as const) {
  const sw = mamba3Args(wasm, n, R, 1),
    st = mamba3Args(ts, n, R, 1);
  const stepWasm = time(() => wasm.mamba3Scan(sw), batches, calls);
  const stepTs = time(() => ts.mamba3Scan(st), 5, 4);
  const qw = mamba3Args(wasm, n, R, L);
  const seqWasm = time(() => wasm.mamba3Scan(qw), seqReps, 1);
  let seqTs = NaN;
  if (o['ts-seq'] === 'true') {
    const qt = mamba3Args(ts, n, R, L);
    seqTs = time(() => ts.mamba3Scan(qt), seqReps, 1);
  }
  rows.push({
    variant: name,
    stepWasmUs: stepWasm,
    stepTsUs: stepTs,
    seqWasmMs: seqWasm / 1000,
    seqTsMs: seqTs / 1000,
  });
}
const ssdArgs = ssdStepArgs(wasm, 128);
const ssdStep = time(() => wasm.ssdScan(ssdArgs), batches, calls);
const load1 = loadavg();

console.log(
  table([
    ['scan', 'step wasm (us)', 'step ts (us)', `seq ${L} wasm (ms)`, `seq ${L} ts (ms)`],
    ...rows.map((r) => [
      r.variant,
      (r.stepWasmUs as number).toFixed(1),
      (r.stepTsUs as number).toFixed(0),
      (r.seqWasmMs as number).toFixed(1),
      Number.isNaN(r.seqTsMs) ? '-' : (r.seqTsMs as number).toFixed(0),
    ]),
    ['mamba2 ssd step 128', ssdStep.toFixed(1), '', '', ''],
  ]),
);
console.log(
  `load average before ${load0.map((x) => x.toFixed(2)).join(' ')}, after ${load1.map((x) => x.toFixed(2)).join(' ')}`,
);
const file = o.out ?? resultFile('mamba3-scan');
writeFileSync(
  file,
  JSON.stringify(
    {
      machine: {
        cpu: cpus()[0]?.model,
        cores: cpus().length,
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
        simd: simdLevel(),
        threads: 1,
        loadAverageBefore: load0,
        loadAverageAfter: load1,
        date: new Date().toISOString(),
        command: `node dist/bench/mamba3-scan.js ${process.argv.slice(2).join(' ')}`.trim(),
      },
      settings: { heads: h, headdim: p, length: L, calls, batches, seqReps, timing: 'minimum per call' },
      results: rows,
      mamba2SsdStepUs: ssdStep,
    },
    null,
    2,
  ) + '\n',
);
console.log(`wrote ${file}`);
