import type { SelectiveScanArgs } from '../src/backend/contract/inference.js';
import { cpu } from '../src/backend/cpu/cpu-backend.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { benchArgs } from '../src/cli/bench-suites.js';
import { numberList } from '../src/cli/args.js';
import { backend, machine, random, table, timeCalls, warmUp, writeResult } from './webgpu-common.js';
import { chunkLength } from '../src/backend/webgpu/kernels/scan.js';
import type { WebGpuBackend } from '../src/backend/webgpu/webgpu-backend.js';

/**
 * The fused selective scan forward on WebGPU, f32, with z, D, delta bias and softplus (how Mamba
 * calls it), B and C as views of one (b, l, 2n) buffer (x_proj's output layout).
 *   node dist/bench/webgpu-scan.js [options] (options and defaults: --help; one table in src/cli/bench-suites.ts)
 * Time: GPU time from timestamp queries (sum of the scan's dispatches, median over reps) and
 * wall-clock per call with many calls queued back to back. Effective bandwidth counts u, delta, z, y
 * (b*l*e*4 bytes each) plus B and C (b*l*n*4 each), each once.
 */
const a = benchArgs('webgpu-scan');
const shapes = a.shapes.split(',').map((s) => s.split('x').map(Number) as [number, number, number, number]);
const threadsList = numberList(a.threads, 'threads', { int: true, min: 0 });
const wgList = numberList(a.wg, 'wg', { int: true, min: 1 });
const reps = a.reps;
const ANCHOR: Record<string, number> = { '1x1536x2048x16': 0.126, '4x2048x4096x16': 1.175, '8x5120x2048x16': 2.857 };

function inputs(bk: WebGpuBackend, b: number, l: number, e: number, n: number): SelectiveScanArgs {
  const bc = random(bk, [b, l, 2 * n], -1, 1, 7);
  return {
    y: bk.alloc([b, l, e]),
    u: random(bk, [b, l, e], -1, 1, 1),
    delta: random(bk, [b, l, e], -4, 0, 2),
    z: random(bk, [b, l, e], -2, 2, 3),
    A: random(bk, [e, n], -4, -0.1, 4),
    B: bc.narrow(0, n),
    C: bc.narrow(n, n),
    D: random(bk, [e], 0.5, 1.5, 5),
    deltaBias: random(bk, [e], -1, 0, 6),
    deltaSoftplus: true,
    h0: null,
    hOut: null,
  };
}

const bk = await backend();
try {
  // correctness on the device: a small scan against the CPU reference
  {
    const [b, l, e, n] = [2, 300, 96, 16];
    const g = inputs(bk, b, l, e, n);
    const hOut = bk.alloc([b, e, n]);
    bk.selectiveScan({ ...g, hOut });
    const c = cpu();
    const up = async (t: Tensor | null): Promise<Tensor | null> =>
      t ? c.upload(await t.readFloat(), [...t.shape]) : null;
    const bcAll = await up(g.B.base!);
    const ref = {
      y: c.alloc([b, l, e]),
      u: (await up(g.u))!,
      delta: (await up(g.delta))!,
      z: await up(g.z),
      A: (await up(g.A))!,
      B: bcAll!.narrow(0, n),
      C: bcAll!.narrow(n, n),
      D: await up(g.D),
      deltaBias: await up(g.deltaBias),
      deltaSoftplus: true,
      h0: null,
      hOut: c.alloc([b, e, n]),
    };
    c.selectiveScan(ref);
    const [gy, cy] = [await g.y.readFloat(), c.readSync(ref.y) as Float32Array];
    let err = 0;
    for (let i = 0; i < gy.length; i++) err = Math.max(err, Math.abs(gy[i] - cy[i]) / (1e-3 + Math.abs(cy[i])));
    console.log(`check (b, l, e, n) = (${b}, ${l}, ${e}, ${n}) vs CPU: max relative error ${err.toExponential(2)}`);
    if (!(err < 1e-3)) throw new Error(`scan check failed: ${err}`);
  }
  const results: Record<string, unknown>[] = [];
  const rows: (string | number)[][] = [
    ['shape (b,e,l,n)', 'threads', 'wg', 'chunk', 'GPU ms', 'wall ms', 'GB/s', 'official ms', 'speed-up'],
  ];
  for (const [b, e, l, n] of shapes) {
    const args = inputs(bk, b, l, e, n);
    const bytes = 4 * b * l * e * 4 + 2 * b * l * n * 4;
    const key = `${b}x${e}x${l}x${n}`;
    await warmUp(1, async () => {
      for (let i = 0; i < 5; i++) bk.selectiveScan(args);
      await bk.sync();
    });
    for (const threads of threadsList) {
      for (const wg of wgList) {
        bk.options.scanThreads = threads;
        bk.options.scanWorkgroup = wg;
        bk.selectiveScan(args);
        await bk.sync();
        const {
          gpuMs,
          wallMs,
          best,
          gpuRuns: per,
          dispatches,
        } = await timeCalls(
          bk,
          () => bk.selectiveScan(args),
          (k) => k.startsWith('scan') || k === 'copy',
          reps,
        );
        const L = chunkLength(b, l, e, 0, threads || 1 << 17);
        const r = {
          shape: { b, e, l, n },
          threads: threads || 1 << 17,
          wg,
          chunk: L,
          gpuMs,
          wallMs,
          gbPerS: bytes / (best * 1e6),
          bytes,
          officialMs: ANCHOR[key],
          gpuRuns: per,
          dispatches,
        };
        results.push(r);
        rows.push([
          `(${b},${e},${l},${n})`,
          r.threads,
          wg,
          L,
          gpuMs.toFixed(3),
          wallMs.toFixed(3),
          r.gbPerS.toFixed(0),
          ANCHOR[key] ?? '-',
          ANCHOR[key] ? (ANCHOR[key] / best).toFixed(2) + 'x' : '-',
        ]);
        console.log(rows[rows.length - 1].join('  '));
      }
    }
    for (const t of [args.y, args.u, args.delta, args.z!, args.A, args.B.base!, args.D!, args.deltaBias!]) t.dispose();
  }
  console.log(table(rows));
  console.log('wrote', writeResult(a.name, { machine: machine(bk), results }, a.out));
} finally {
  bk.dispose();
}
