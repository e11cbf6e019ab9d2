/**
 * SSD (Mamba-2) prefill and decode against Mamba-1's selective scan on the CPU backend, at equal d_model,
 * with the TypeScript and the WebAssembly kernels side by side:
 *   Mamba-1: e = 2d channels, d_state 16 (its shape; one exp per channel and state entry per token),
 *            and d_state 128 (the SSD's state size, e x 128), WebAssembly kernels;
 *   Mamba-2: e = 2d as h = e/64 heads of 64, d_state 128, 1 group, chunked with Q = 256 and 64 (the
 *            WebAssembly scan runs chunks of at most 64: launch.ts SSD_MAX_CHUNK), on both kernel kinds,
 *            plus the sequential SSD recurrence in TypeScript (the tests' reference);
 *   decode:  `--steps` single-token steps (l = 1, h0 = hOut) of each, per step.
 * Scan kernels only (in_proj, conv, norm and out_proj excluded), batch 1 unless given, one thread.
 * Prints a table and the ratios, and writes bench/results/ssd-<timestamp>.json with the machine and the command.
 *
 * Usage: node dist/bench/ssd.js [options], or mamba-ts bench ssd [options]
 *        (options and defaults: --help; one table in src/cli/bench-suites.ts)
 * --official also times the shape of the official Triton SSD figure (batch 4, length 4096, 64 heads
 * x 64, d_state 128; 0.96 ms in bf16 on an H200): slow on a CPU.
 */
import { writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, platform, totalmem } from 'node:os';
import { numberList } from '../src/cli/args.js';
import { benchArgs, resultFile } from '../src/cli/bench-suites.js';
import { checkSsdScan, type SelectiveScanArgs, type SsdScanArgs } from '../src/backend/contract/inference.js';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { ssdSequentialScan } from '../src/backend/cpu/reference/ssd-sequential.js';
import { simdLevel } from '../src/backend/cpu/wasm/module.js';
import type { Tensor } from '../src/tensor/tensor.js';

const argv = process.argv.slice(2);
const a = benchArgs('ssd', argv);
const { d, batch, repeats, official, steps } = a;
const lengths = numberList(a.lengths, 'lengths', { int: true, min: 1 });
const chunks = numberList(a.chunks, 'chunks', { int: true, min: 1 });

const wasm = new CpuBackend({ kernels: 'wasm' });
const ts = new CpuBackend({ kernels: 'ts' });
if (wasm.kernels !== 'wasm') throw new Error('this engine does not run the WebAssembly kernels');
let seed = 12345;
function rand(n: number, scale: number, shift = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    a[i] = (seed / 2 ** 32 - 0.5) * 2 * scale + shift;
  }
  return a;
}
const up = (bk: CpuBackend, a: Float32Array, shape: number[]): Tensor => bk.upload(a, shape);

/** Median wall time of `repeats` runs after one warm-up, in ms. */
function time(fn: () => void, reps = repeats): number {
  fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)];
}

interface Row {
  kernel: string;
  shape: string;
  b: number;
  l: number;
  ms: number;
  tokensPerSecond: number;
}
const rows: Row[] = [];
function record(kernel: string, shape: string, b: number, l: number, ms: number): void {
  const r = { kernel, shape, b, l, ms: +ms.toFixed(2), tokensPerSecond: Math.round((b * l) / (ms / 1000)) };
  rows.push(r);
  console.log(
    `${kernel.padEnd(26)} ${shape.padEnd(34)} b=${b} l=${String(l).padStart(5)}  ${ms.toFixed(1).padStart(9)} ms  ${String(r.tokensPerSecond).padStart(9)} tok/s`,
  );
}

function scanArgs(bk: CpuBackend, b: number, l: number, e: number, n: number): SelectiveScanArgs {
  const hOut = bk.alloc([b, e, n]);
  return {
    y: bk.alloc([b, l, e]),
    u: up(bk, rand(b * l * e, 1), [b, l, e]),
    delta: up(bk, rand(b * l * e, 1, -3), [b, l, e]),
    A: up(bk, rand(e * n, 2, -3), [e, n]),
    B: up(bk, rand(b * l * n, 1), [b, l, n]),
    C: up(bk, rand(b * l * n, 1), [b, l, n]),
    D: up(bk, rand(e, 1), [e]),
    z: up(bk, rand(b * l * e, 1), [b, l, e]),
    deltaBias: up(bk, rand(e, 1), [e]),
    deltaSoftplus: true,
    h0: l === 1 ? hOut : null,
    hOut,
  };
}

function mamba1(b: number, l: number, n: number): void {
  const e = 2 * d;
  const args = scanArgs(wasm, b, l, e, n);
  record(
    'mamba1 selectiveScan wasm',
    `e=${e} n=${n}`,
    b,
    l,
    time(() => wasm.selectiveScan(args)),
  );
}

function ssdArgs(bk: CpuBackend, b: number, l: number, h: number, p: number, n: number, Q: number): SsdScanArgs {
  const e = h * p;
  const hOut = bk.alloc([b, h, p, n]);
  return {
    y: bk.alloc([b, l, e]),
    x: up(bk, rand(b * l * e, 1), [b, l, e]),
    dt: up(bk, rand(b * l * h, 1, -3), [b, l, h]),
    A: up(bk, rand(h, 4, -5), [h]),
    B: up(bk, rand(b * l * n, 1), [b, l, n]),
    C: up(bk, rand(b * l * n, 1), [b, l, n]),
    D: up(bk, rand(h, 1), [h]),
    dtBias: up(bk, rand(h, 1), [h]),
    dtSoftplus: true,
    dtLimit: [0, Infinity],
    nGroups: 1,
    chunkSize: Q,
    h0: l === 1 ? hOut : null,
    hOut,
  };
}

function mamba2(b: number, l: number, h: number, p: number, n: number, reps = repeats): void {
  for (const [kind, bk] of [
    ['wasm', wasm],
    ['ts', ts],
  ] as const) {
    for (const Q of chunks) {
      const a = ssdArgs(bk, b, l, h, p, n, Q);
      record(
        `mamba2 ssdScan ${kind} chunk ${Q}`,
        `h=${h} p=${p} n=${n} g=1`,
        b,
        l,
        time(() => bk.ssdScan(a), reps),
      );
    }
  }
  const a = ssdArgs(ts, b, l, h, p, n, 1);
  const views = ts.ssdViews(a),
    dims = checkSsdScan(a);
  record(
    'mamba2 sequential ts (ref)',
    `h=${h} p=${p} n=${n} g=1`,
    b,
    l,
    time(() => ssdSequentialScan(views, dims), reps),
  );
}

/** One-token steps (h0 = hOut): the time of `steps` of them, recorded per step (l = 1 in the table). */
function decode(b: number, h: number, p: number, n: number): void {
  const e = 2 * d;
  const per = (fn: () => void): number =>
    time(() => {
      for (let i = 0; i < steps; i++) fn();
    }) / steps;
  for (const m1n of [16, n]) {
    const a = scanArgs(wasm, b, 1, e, m1n);
    record(
      'mamba1 step wasm',
      `e=${e} n=${m1n}`,
      b,
      1,
      per(() => wasm.selectiveScan(a)),
    );
  }
  for (const [kind, bk] of [
    ['wasm', wasm],
    ['ts', ts],
  ] as const) {
    const a = ssdArgs(bk, b, 1, h, p, n, 1);
    record(
      `mamba2 step ${kind}`,
      `h=${h} p=${p} n=${n} g=1`,
      b,
      1,
      per(() => bk.ssdScan(a)),
    );
  }
}

/** Speed ratios (tokens per second of a over b) for each length, from the rows recorded. */
function ratios(): Record<string, number>[] {
  const out: Record<string, number>[] = [];
  const find = (kernel: string, shape: string | null, l: number): Row | undefined =>
    rows.find((r) => r.kernel === kernel && r.l === l && r.b === batch && (shape === null || r.shape === shape));
  const e = 2 * d;
  for (const l of [...lengths, 1]) {
    const r: Record<string, number> = { l };
    const ratio = (name: string, a: Row | undefined, b: Row | undefined): void => {
      if (a && b) r[name] = +(b.ms / a.ms).toFixed(2);
    };
    if (l === 1) {
      const w = find('mamba2 step wasm', null, 1);
      ratio('ssdWasm/ssdTs', w, find('mamba2 step ts', null, 1));
      ratio('ssdWasm/mamba1(n=16)', w, find('mamba1 step wasm', `e=${e} n=16`, 1));
      ratio('ssdWasm/mamba1(n=128)', w, find('mamba1 step wasm', `e=${e} n=128`, 1));
    } else
      for (const Q of chunks) {
        const w = find(`mamba2 ssdScan wasm chunk ${Q}`, null, l);
        ratio(`Q${Q} ssdWasm/ssdTs`, w, find(`mamba2 ssdScan ts chunk ${Q}`, null, l));
        ratio(`Q${Q} ssdWasm/mamba1(n=16)`, w, find('mamba1 selectiveScan wasm', `e=${e} n=16`, l));
        ratio(`Q${Q} ssdWasm/mamba1(n=128)`, w, find('mamba1 selectiveScan wasm', `e=${e} n=128`, l));
      }
    out.push(r);
  }
  return out;
}

const cpuInfo = cpus();
console.log(
  `SSD vs selective scan, d_model ${d}, on ${cpuInfo[0]?.model ?? 'unknown CPU'} (${cpuInfo.length} logical cores, load ${loadavg()
    .map((v) => v.toFixed(2))
    .join(' ')}), node ${process.version}, one thread, ${simdLevel()} build`,
);
console.log('note: this CPU may be shared with other jobs; rerun on an idle machine for reference figures\n');
for (const l of lengths) {
  mamba1(batch, l, 16);
  mamba1(batch, l, 128);
  mamba2(batch, l, (2 * d) / 64, 64, 128);
}
if (steps > 0) decode(batch, (2 * d) / 64, 64, 128);
if (official) mamba2(4, 4096, 64, 64, 128, 1);
const speedups = ratios();
console.log('\nspeed ratios (how many times faster the WebAssembly SSD is; l = 1: the decode step)');
for (const r of speedups) console.log(JSON.stringify(r));

const file = resultFile('ssd', a.out);
writeFileSync(
  file,
  JSON.stringify(
    {
      bench: 'ssd',
      command: `node dist/bench/ssd.js ${argv.join(' ')}`.trim(),
      date: new Date().toISOString(),
      machine: {
        cpu: cpuInfo[0]?.model,
        logicalCores: cpuInfo.length,
        loadavgAtEnd: loadavg(),
        memoryBytes: totalmem(),
        platform: platform(),
        arch: arch(),
        node: process.version,
        threads: 1,
      },
      note: 'CPU backend, one thread, f32 storage; TypeScript kernels accumulate in f64, WebAssembly ones in f32; scan kernels only. The machine may have been shared with other jobs.',
      params: { dModel: d, batch, lengths, chunks, repeats, steps, official, simd: simdLevel() },
      results: rows,
      speedRatios: speedups,
    },
    null,
    1,
  ) + '\n',
);
console.log(`\nwrote ${file}`);
