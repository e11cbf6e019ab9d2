/**
 * SSD (Mamba-2) prefill against Mamba-1's selective scan on the CPU backend, at equal d_model:
 *   Mamba-1: e = 2d channels, d_state 16 (one exp per channel and state entry per token)
 *   Mamba-2: e = 2d as h = e/64 heads of 64, d_state 128, 1 group, chunked with Q = 256 (and other Q),
 *            plus the sequential SSD recurrence (the tests' reference) for comparison.
 * Scan kernels only (in_proj, conv, norm and out_proj excluded), batch 1 unless given, one thread.
 * Prints a table and writes bench/results/ssd-<timestamp>.json with the machine and the command.
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
import { checkSsdScan, type SsdScanArgs } from '../src/backend/contract/inference.js';
import { cpu } from '../src/backend/cpu/cpu-backend.js';
import { ssdSequentialScan } from '../src/backend/cpu/reference/ssd-sequential.js';
import type { Tensor } from '../src/tensor/tensor.js';

const argv = process.argv.slice(2);
const a = benchArgs('ssd', argv);
const { d, batch, repeats, official } = a;
const lengths = numberList(a.lengths, 'lengths', { int: true, min: 1 });
const chunks = numberList(a.chunks, 'chunks', { int: true, min: 1 });

const bk = cpu();
let seed = 12345;
function rand(n: number, scale: number, shift = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    a[i] = (seed / 2 ** 32 - 0.5) * 2 * scale + shift;
  }
  return a;
}
const up = (a: Float32Array, shape: number[]): Tensor => bk.upload(a, shape);

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

function mamba1(b: number, l: number): void {
  const e = 2 * d,
    n = 16;
  const y = bk.alloc([b, l, e]);
  const args = {
    y,
    u: up(rand(b * l * e, 1), [b, l, e]),
    delta: up(rand(b * l * e, 1, -3), [b, l, e]),
    A: up(rand(e * n, 2, -3), [e, n]),
    B: up(rand(b * l * n, 1), [b, l, n]),
    C: up(rand(b * l * n, 1), [b, l, n]),
    D: up(rand(e, 1), [e]),
    z: up(rand(b * l * e, 1), [b, l, e]),
    deltaBias: up(rand(e, 1), [e]),
    deltaSoftplus: true,
    h0: null,
    hOut: bk.alloc([b, e, n]),
  };
  record(
    'mamba1 selectiveScan',
    `e=${e} n=${n}`,
    b,
    l,
    time(() => bk.selectiveScan(args)),
  );
}

function ssdArgs(b: number, l: number, h: number, p: number, n: number, Q: number): SsdScanArgs {
  const e = h * p;
  return {
    y: bk.alloc([b, l, e]),
    x: up(rand(b * l * e, 1), [b, l, e]),
    dt: up(rand(b * l * h, 1, -3), [b, l, h]),
    A: up(rand(h, 4, -5), [h]),
    B: up(rand(b * l * n, 1), [b, l, n]),
    C: up(rand(b * l * n, 1), [b, l, n]),
    D: up(rand(h, 1), [h]),
    dtBias: up(rand(h, 1), [h]),
    dtSoftplus: true,
    dtLimit: [0, Infinity],
    nGroups: 1,
    chunkSize: Q,
    h0: null,
    hOut: bk.alloc([b, h, p, n]),
  };
}

function mamba2(b: number, l: number, h: number, p: number, n: number, reps = repeats): void {
  for (const Q of chunks) {
    const a = ssdArgs(b, l, h, p, n, Q);
    record(
      `mamba2 ssdScan chunk ${Q}`,
      `h=${h} p=${p} n=${n} g=1`,
      b,
      l,
      time(() => bk.ssdScan(a), reps),
    );
  }
  const a = ssdArgs(b, l, h, p, n, 1);
  const views = bk.ssdViews(a),
    dims = checkSsdScan(a);
  record(
    'mamba2 sequential (ref)',
    `h=${h} p=${p} n=${n} g=1`,
    b,
    l,
    time(() => ssdSequentialScan(views, dims), reps),
  );
}

const cpuInfo = cpus();
console.log(
  `SSD vs selective scan, d_model ${d}, on ${cpuInfo[0]?.model ?? 'unknown CPU'} (${cpuInfo.length} logical cores, load ${loadavg()
    .map((v) => v.toFixed(2))
    .join(' ')}), node ${process.version}, one thread`,
);
console.log('note: this CPU may be shared with other jobs; rerun on an idle machine for reference figures\n');
for (const l of lengths) {
  mamba1(batch, l);
  mamba2(batch, l, (2 * d) / 64, 64, 128);
}
if (official) mamba2(4, 4096, 64, 64, 128, 1);

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
      note: 'CPU backend, one thread, f32 storage with f64 accumulation; scan kernels only. The machine may have been shared with other jobs.',
      params: { dModel: d, batch, lengths, chunks, repeats, official },
      results: rows,
    },
    null,
    1,
  ) + '\n',
);
console.log(`\nwrote ${file}`);
