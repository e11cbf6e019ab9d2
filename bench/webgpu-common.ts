import { mkdirSync, writeFileSync } from 'node:fs';
import { resultFile } from '../src/cli/bench-suites.js';
import { dirname, join } from 'node:path';
import type { Backend } from '../src/backend/backend.js';
import { createNodeWebGpuBackend } from '../src/backend/webgpu/node.js';
import type { WebGpuBackend, WebGpuBackendOptions } from '../src/backend/webgpu/webgpu-backend.js';
import { MambaMixer } from '../src/mixers/mamba.js';
import type { MambaConfig } from '../src/models/config.js';
import { LanguageModel, type Block } from '../src/models/lm.js';
import { f32ToHalf } from '../src/tensor/dtype.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { commandLine, hostMachine } from './machine.js';

/** Shared pieces of the WebGPU benchmarks: the backend, random models of real shapes, result files. */

export async function backend(o: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  return createNodeWebGpuBackend(o);
}

/** Mamba-1 shapes of the public checkpoints (d_model, layers); V = 50280, n = 16, k = 4, expand 2. */
export const SHAPES: Record<string, { d: number; layers: number }> = {
  '130m': { d: 768, layers: 24 },
  '370m': { d: 1024, layers: 48 },
  '1.4b': { d: 2048, layers: 48 },
  tiny: { d: 64, layers: 2 },
};

export function mambaConfig(d: number, layers: number, V = 50280): MambaConfig {
  return {
    arch: 'mamba',
    dModel: d,
    nLayer: layers,
    vocabSize: V,
    dState: 16,
    dConv: 4,
    expand: 2,
    dInner: 2 * d,
    dtRank: Math.ceil(d / 16),
    useBias: false,
    useConvBias: true,
    normEps: 1e-5,
    residualInFp32: true,
    tieEmbeddings: true,
    eosTokenId: 0,
    bosTokenId: 0,
    padTokenId: 0,
    layout: 'hf',
  };
}

/** A block of random values reused for every weight (timing does not depend on the values). */
let block: Float32Array | undefined;
function randomBlock(): Float32Array {
  if (!block) {
    block = new Float32Array(1 << 22);
    let s = 12345;
    for (let i = 0; i < block.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      block[i] = ((s >>> 8) / 16777216 - 0.5) * 2;
    }
  }
  return block;
}

/** Blocks of random values per (scale, offset, dtype), tiled into each weight (fast even for 1.4B parameters). */
const blocks = new Map<string, Float32Array | Uint16Array>();
/** Weight formats of the WebGPU benchmarks' random models (q4: quantised by the backend's upload). */
export type BenchWeights = 'f32' | 'f16' | 'bf16' | 'q4';

function blockFor(dtype: BenchWeights, scale: number, offset: number): Float32Array | Uint16Array {
  const key = `${dtype}:${scale}:${offset}`;
  let b = blocks.get(key);
  if (!b) {
    const src = randomBlock();
    const f = new Float32Array(src.length);
    for (let i = 0; i < f.length; i++) f[i] = src[i] * scale + offset;
    b = dtype === 'f32' || dtype === 'q4' ? f : f32ToHalf(f, dtype);
    blocks.set(key, b);
  }
  return b;
}

/** A tensor of `shape` in `dtype` from a repeating block of random values (scale, offset), kept. */
export function randomTensor(bk: Backend, shape: number[], dtype: BenchWeights, scale: number, offset = 0): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const blk = blockFor(dtype, scale, offset);
  const data = dtype === 'f32' || dtype === 'q4' ? new Float32Array(n) : new Uint16Array(n);
  for (let i = 0; i < n; i += blk.length) data.set(blk.subarray(0, Math.min(blk.length, n - i)) as never, i);
  return bk.upload(data, shape, dtype).keep();
}

/** A Mamba-1 language model with random weights of the given shape; matrices in `wdtype`. */
export function randomModel(bk: Backend, c: MambaConfig, wdtype: BenchWeights): LanguageModel {
  const { dModel: d, dInner: e, dState: n, dConv: k, dtRank: r, vocabSize: V } = c;
  const blocks: Block[] = [];
  for (let i = 0; i < c.nLayer; i++) {
    const w = {
      inProj: randomTensor(bk, [2 * e, d], wdtype, 1 / Math.sqrt(d)),
      inProjBias: null,
      convWeight: randomTensor(bk, [e, k], 'f32', 0.5),
      convBias: randomTensor(bk, [e], 'f32', 0.1),
      xProj: randomTensor(bk, [r + 2 * n, e], wdtype, 1 / Math.sqrt(e)),
      dtProj: randomTensor(bk, [e, r], wdtype, 1 / Math.sqrt(r)),
      dtProjBias: randomTensor(bk, [e], 'f32', 1, -4),
      ALog: randomTensor(bk, [e, n], 'f32', 1, 1),
      D: randomTensor(bk, [e], 'f32', 0.5, 1),
      outProj: randomTensor(bk, [d, e], wdtype, 1 / Math.sqrt(e) / Math.sqrt(c.nLayer)),
      outProjBias: null,
    };
    blocks.push({ norm: randomTensor(bk, [d], 'f32', 0.1, 1), mixer: new MambaMixer(bk, w, { d, e, n, k, r }) });
  }
  const emb = randomTensor(bk, [V, d], wdtype, 0.02);
  return new LanguageModel(c, bk, emb, blocks, randomTensor(bk, [d], 'f32', 0.1, 1), emb);
}

export function machine(bk: WebGpuBackend): Record<string, unknown> {
  return {
    ...hostMachine(),
    gpu: bk.describe(),
    date: new Date().toISOString(),
    command: commandLine(),
  };
}

/** Writes `<outDir>/<name>.json` with --out DIR, else a new `bench/results/<name>-<date>.json`. */
export function writeResult(name: string, data: unknown, outDir: string | undefined): string {
  const file = resultFile(name, outDir === undefined ? undefined : join(outDir, `${name}.json`));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  return file;
}

export function table(rows: (string | number)[][]): string {
  const w = rows[0].map((_, j) => Math.max(...rows.map((r) => String(r[j]).length)));
  return rows.map((r) => r.map((c, j) => String(c).padStart(w[j])).join('  ')).join('\n');
}

/** Runs `fn` repeatedly for at least `seconds` (GPU clocks up from idle); returns the repetitions. */
export async function warmUp(seconds: number, fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < seconds * 1000) {
    await fn();
    n++;
  }
  return n;
}

/**
 * Times one kernel call `run` two ways: GPU time from timestamp queries (the dispatches whose names
 * `mine` accepts, summed per call; median of `reps`, NaN without the feature) and wall clock per call
 * with `reps` calls queued in one submit. `best` is the smaller, the basis of effective bandwidth.
 */
export async function timeCalls(
  bk: WebGpuBackend,
  run: () => void,
  mine: (kernel: string) => boolean,
  reps: number,
): Promise<{
  gpuMs: number;
  wallMs: number;
  best: number;
  gpuRuns: number[];
  dispatches: number;
  kernels: ReturnType<typeof byKernel>;
}> {
  const runs: { ms: number; prof: [string, number][] }[] = [];
  let dispatches = 0;
  if (bk.g.features.has('timestamp-query')) {
    for (let r = 0; r < reps; r++) {
      bk.startProfile();
      run();
      const prof = (await bk.stopProfile()).filter(([k]) => mine(k));
      dispatches = prof.length;
      runs.push({ ms: prof.reduce((a, [, ns]) => a + ns, 0) / 1e6, prof });
    }
  }
  runs.sort((x, y) => x.ms - y.ms);
  const per = runs.map((r) => r.ms);
  // the median run, whole and by kernel (where the time of a several-dispatch call goes)
  const median = runs.length ? runs[Math.floor(runs.length / 2)] : undefined;
  const gpuMs = median ? median.ms : NaN;
  const kernels = median ? byKernel(median.prof) : [];
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) run();
  await bk.sync();
  const wallMs = (performance.now() - t0) / reps;
  const best = Number.isFinite(gpuMs) ? Math.min(gpuMs, wallMs) : wallMs;
  return { gpuMs, wallMs, best, gpuRuns: per, dispatches, kernels };
}

/** Sums profiled GPU time by kernel name: [name, total ms, share, dispatches]. */
export function byKernel(
  prof: [string, number][],
): { kernel: string; ms: number; share: number; dispatches: number }[] {
  const m = new Map<string, { ns: number; n: number }>();
  let total = 0;
  for (const [k, ns] of prof) {
    const e = m.get(k) ?? { ns: 0, n: 0 };
    e.ns += ns;
    e.n++;
    m.set(k, e);
    total += ns;
  }
  return [...m.entries()]
    .map(([kernel, e]) => ({ kernel, ms: e.ns / 1e6, share: e.ns / total, dispatches: e.n }))
    .sort((a, b) => b.ms - a.ms);
}

/** An f32 tensor of `shape`, uniform in [lo, hi) (an LCG over a block of at most 2^20 values, repeated). */
export function random(bk: WebGpuBackend, shape: number[], lo: number, hi: number, seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const blk = new Float32Array(Math.min(n, 1 << 20));
  let s = seed;
  for (let i = 0; i < blk.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    blk[i] = lo + (hi - lo) * (s / 2 ** 32);
  }
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += blk.length) a.set(blk.subarray(0, Math.min(blk.length, n - i)), i);
  return bk.upload(a, shape, 'f32');
}

/** Frees a benchmark model: its parameters and the mixers' kept step buffers. */
export function disposeModel(model: LanguageModel): void {
  for (const t of model.parameters().values()) t.dispose();
  model.blocks.forEach((b) => (b.mixer as { dispose?: () => void }).dispose?.());
}
