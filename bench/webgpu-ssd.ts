import type { SsdScanArgs } from '../src/backend/contract/inference.js';
import { cpu } from '../src/backend/cpu/cpu-backend.js';
import type { WebGpuBackend } from '../src/backend/webgpu/webgpu-backend.js';
import type { SsdPath } from '../src/backend/webgpu/kernel-host.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { benchArgs } from '../src/cli/bench-suites.js';
import { numberList } from '../src/cli/args.js';
import { backend, machine, random, table, timeCalls, warmUp, writeResult } from './webgpu-common.js';

/**
 * Mamba-2's SSD scan on WebGPU, f32, how the mixer calls it: x, B and C as column views of one
 * (b, l, h p + 2 g n) buffer (the conv's output), dt a view of in_proj's output, dt bias + softplus, D.
 *   node dist/bench/webgpu-ssd.js [options] (options and defaults: --help; one table in src/cli/bench-suites.ts)
 * Shapes are b x l x heads x head_dim x d_state x groups; a shape of length <= 16 also runs the
 * step-by-step kernel (the decode step: l = 1, state updated in place). Time: GPU time from timestamp
 * queries (sum of the ssd.* dispatches, median over reps) and wall-clock per call with calls queued
 * back to back. Effective GB/s counts x, y (b l h p), B, C (b l g n) and dt (b l h) once each.
 * First checks a small scan against the CPU reference on the device, for each path.
 */
const a = benchArgs('webgpu-ssd');
type SsdShape = [number, number, number, number, number, number];
const shapes = a.shapes.split(',').map((s) => s.split('x').map(Number) as SsdShape);
const chunks = numberList(a.chunks, 'chunks', { int: true, min: 1 });
const paths = a.paths.split(',') as SsdPath[];
const reps = a.reps;

function inputs(
  bk: WebGpuBackend,
  b: number,
  l: number,
  h: number,
  p: number,
  n: number,
  g: number,
  step: boolean,
): SsdScanArgs {
  const e = h * p;
  const xbc = random(bk, [b, l, e + 2 * g * n], -1, 1, 1);
  const state = step ? random(bk, [b, h, p, n], -1, 1, 6) : null;
  return {
    y: bk.alloc([b, l, e]),
    x: xbc.narrow(0, e),
    B: xbc.narrow(e, g * n),
    C: xbc.narrow(e + g * n, g * n),
    dt: random(bk, [b, l, h + 3], -4, 0, 2).narrow(0, h),
    A: random(bk, [h], -8, -1, 3),
    D: random(bk, [h], 0.5, 1.5, 4),
    dtBias: random(bk, [h], -1, 0, 5),
    dtSoftplus: true,
    dtLimit: [0, Infinity],
    nGroups: g,
    chunkSize: 256,
    h0: state,
    hOut: state,
  };
}

const bk = await backend();
try {
  // correctness on the device: a small scan with a carried state, each path, against the CPU reference
  for (const path of ['sequential', 'chunked'] as const) {
    const [b, l, h, p, n, g] = [2, 300, 4, 32, 64, 2];
    bk.options.ssdPath = path;
    bk.options.ssdChunk = 64;
    const a = inputs(bk, b, l, h, p, n, g, false);
    const h0 = random(bk, [b, h, p, n], -1, 1, 9);
    const hOut = bk.alloc([b, h, p, n]);
    bk.ssdScan({ ...a, h0, hOut });
    const c = cpu();
    const up = async (t: Tensor): Promise<Tensor> => c.upload(await t.readFloat(), [...t.shape]);
    const xbc = await up(a.x.base!);
    const e = h * p;
    const ref: SsdScanArgs = {
      ...a,
      y: c.alloc([b, l, e]),
      x: xbc.narrow(0, e),
      B: xbc.narrow(e, g * n),
      C: xbc.narrow(e + g * n, g * n),
      dt: (await up(a.dt.base!)).narrow(0, h),
      A: await up(a.A),
      D: await up(a.D!),
      dtBias: await up(a.dtBias!),
      h0: await up(h0),
      hOut: c.alloc([b, h, p, n]),
    };
    c.ssdScan(ref);
    const [gy, cy] = [await a.y.readFloat(), c.readSync(ref.y) as Float32Array];
    // error relative to the output's scale (single values near zero carry the absolute f32 error)
    let err = 0,
      scale = 0;
    for (let i = 0; i < gy.length; i++) {
      err = Math.max(err, Math.abs(gy[i] - cy[i]));
      scale = Math.max(scale, Math.abs(cy[i]));
    }
    console.log(
      `check ${path} (b, l, h, p, n, g) = (${b}, ${l}, ${h}, ${p}, ${n}, ${g}) vs CPU: max abs error ${err.toExponential(2)} (max |y| ${scale.toFixed(2)})`,
    );
    if (!(err < 1e-4 * scale)) throw new Error(`ssd check failed (${path}): max abs error ${err}, max |y| ${scale}`);
  }
  const results: Record<string, unknown>[] = [];
  const rows: (string | number)[][] = [
    ['shape (b,l,h,p,n,g)', 'path', 'chunk', 'GPU ms', 'wall ms', 'GB/s', 'dispatches'],
  ];
  for (const [b, l, h, p, n, g] of shapes) {
    const step = l <= 16;
    const args = inputs(bk, b, l, h, p, n, g, step);
    const bytes = (2 * b * l * h * p + 2 * b * l * g * n + b * l * h) * 4 + (step ? 2 * b * h * p * n * 4 : 0);
    const configs: [SsdPath, number][] = step
      ? [['sequential', 0]]
      : paths.flatMap((pa) =>
          pa === 'chunked' ? chunks.map((q) => [pa, q] as [SsdPath, number]) : [[pa, 0] as [SsdPath, number]],
        );
    for (const [path, chunk] of configs) {
      bk.options.ssdPath = path;
      bk.options.ssdChunk = chunk;
      await warmUp(1, async () => {
        for (let i = 0; i < 3; i++) bk.ssdScan(args);
        await bk.sync();
      });
      const {
        gpuMs,
        wallMs,
        best,
        gpuRuns: per,
        dispatches,
      } = await timeCalls(
        bk,
        () => bk.ssdScan(args),
        (k) => k.startsWith('ssd'),
        reps,
      );
      const r = {
        shape: { b, l, h, p, n, g },
        path,
        chunk: chunk || (path === 'chunked' ? 256 : 0),
        gpuMs,
        wallMs,
        gbPerS: bytes / (best * 1e6),
        bytes,
        gpuRuns: per,
        dispatches,
      };
      results.push(r);
      rows.push([
        `(${b},${l},${h},${p},${n},${g})`,
        path,
        r.chunk || '-',
        gpuMs.toFixed(3),
        wallMs.toFixed(3),
        r.gbPerS.toFixed(0),
        dispatches,
      ]);
      console.log(rows[rows.length - 1].join('  '));
    }
    for (const t of [args.y, args.x.base!, args.dt.base!, args.A, args.D!, args.dtBias!, args.h0]) t?.dispose();
  }
  console.log(table(rows));
  console.log('wrote', writeResult(a.name, { machine: machine(bk), results }, a.out));
} finally {
  bk.dispose();
}
