/**
 * Peak memory of the selective scan's forward + backward: the chunked recomputation of the backend
 * kernel (states at chunk starts only) against the textbook method that stores every state h_t
 * (selective-scan-stored.ts), at several lengths. Each measurement runs in a fresh child process and
 * reports the rise of its peak resident set (getrusage maxRSS) over the scan, after every input and
 * output buffer has been allocated and touched; the buffers both methods share are not counted.
 *
 * Usage: node dist/bench/scan-memory.js [options], or mamba-ts bench scan-memory [options]
 *        (options and defaults: --help; one table in src/cli/bench-suites.ts)
 * Writes a new bench/results/scan-memory-<date>.json (or --out).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { numberList } from '../src/cli/args.js';
import { benchArgs, resultFile } from '../src/cli/bench-suites.js';
import { selectiveScan, type ScanViews } from '../src/backend/cpu/reference/selective-scan.js';
import { selectiveScanBackward, type ScanBackwardViews } from '../src/backend/cpu/reference/selective-scan-backward.js';
import {
  selectiveScanBackwardStored,
  selectiveScanStoring,
} from '../src/backend/cpu/reference/selective-scan-stored.js';
import type { FView } from '../src/backend/cpu/reference/view.js';

const here = fileURLToPath(import.meta.url);

function filled(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32 - 0.5) * scale;
  }
  return a;
}

/** Child: one measurement; prints JSON. */
function child(method: 'recompute' | 'store', b: number, l: number, e: number, n: number): void {
  const v = (data: Float32Array, ld: number, off = 0): FView => ({ data, off, ld, dtype: 'f32' });
  const ble = b * l * e;
  const fw: ScanViews = {
    y: v(filled(ble, 1), e),
    u: v(filled(ble, 2), e),
    delta: v(filled(ble, 3, 2), e),
    A: v(
      filled(e * n, 4).map((x) => -Math.exp(x)),
      n,
    ),
    B: v(filled(b * l * n, 5), n),
    C: v(filled(b * l * n, 6), n),
    D: v(filled(e, 7), e),
    z: v(filled(ble, 8), e),
    deltaBias: v(filled(e, 9), e),
    h0: null,
    hOut: null,
    deltaSoftplus: true,
  };
  const bw: ScanBackwardViews = {
    ...fw,
    dy: v(filled(ble, 10), e),
    du: v(filled(ble, 11), e),
    dDelta: v(filled(ble, 12), e),
    dA: v(filled(e * n, 13), n),
    dB: v(filled(b * l * n, 14), n),
    dC: v(filled(b * l * n, 15), n),
    dD: v(filled(e, 16), e),
    dz: v(filled(ble, 17), e),
    dDeltaBias: v(filled(e, 18), e),
    dh0: null,
  };
  const before = process.resourceUsage().maxRSS;
  const t0 = performance.now();
  if (method === 'recompute') {
    selectiveScan(fw, b, l, e, n);
    selectiveScanBackward(bw, b, l, e, n, 64);
  } else {
    const states = new Float32Array(b * l * e * n),
      yPre = new Float32Array(ble);
    selectiveScanStoring(fw, states, yPre, b, l, e, n);
    selectiveScanBackwardStored(bw, states, yPre, b, l, e, n);
  }
  const seconds = (performance.now() - t0) / 1000;
  const peakKiB = process.resourceUsage().maxRSS - before;
  process.stdout.write(JSON.stringify({ method, peakMiB: peakKiB / 1024, seconds }) + '\n');
}

function main(): void {
  const a = benchArgs('scan-memory');
  const lengths = numberList(a.lengths, 'lengths', { int: true, min: 1 });
  const [b, e, n] = [a.batch, a['d-inner'], a['d-state']];
  const rows: { l: number; method: string; peakMiB: number; seconds: number; storedStatesMiB: number }[] = [];
  for (const l of lengths) {
    for (const method of ['recompute', 'store'] as const) {
      const out = execFileSync(
        process.execPath,
        ['--expose-gc', here, '--child', method, String(b), String(l), String(e), String(n)],
        { encoding: 'utf8' },
      );
      const r = JSON.parse(out.trim()) as { method: string; peakMiB: number; seconds: number };
      rows.push({ l, ...r, storedStatesMiB: (b * l * e * n * 4) / 2 ** 20 });
    }
  }
  console.log(`selective scan forward + backward, b ${b}, d_inner ${e}, d_state ${n}: rise of peak RSS over the scan`);
  console.log('length | recompute (chunk 64) | store all states | all states would be | time recompute / store');
  for (const l of lengths) {
    const r = rows.find((x) => x.l === l && x.method === 'recompute')!,
      s = rows.find((x) => x.l === l && x.method === 'store')!;
    console.log(
      `${String(l).padStart(6)} | ${r.peakMiB.toFixed(1).padStart(8)} MiB         | ${s.peakMiB.toFixed(1).padStart(8)} MiB     | ${r.storedStatesMiB.toFixed(1).padStart(8)} MiB        | ${r.seconds.toFixed(2)} s / ${s.seconds.toFixed(2)} s`,
    );
  }
  const file = resultFile('scan-memory', a.out);
  writeFileSync(
    file,
    JSON.stringify(
      {
        command: `node dist/bench/scan-memory.js ${process.argv.slice(2).join(' ')}`.trim(),
        date: new Date().toISOString(),
        machine: {
          cpu: cpus()[0]?.model,
          cores: cpus().length,
          memoryGiB: totalmem() / 2 ** 30,
          node: process.version,
        },
        dims: { b, e, n, chunk: 64 },
        rows,
      },
      null,
      1,
    ) + '\n',
  );
  console.log(`wrote ${file}`);
}

if (process.argv[2] === '--child')
  child(
    process.argv[3] as 'recompute' | 'store',
    ...(process.argv.slice(4, 8).map(Number) as [number, number, number, number]),
  );
else main();
