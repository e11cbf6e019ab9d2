/**
 * One mixture-of-experts layer on WebGPU in Granite 4.0-H tiny's public shape (hidden 1536, 64 experts,
 * top-6, expert intermediate 512, shared expert 1024: the granitehybrid GGUF metadata of
 * ibm-granite/granite-4.0-h-tiny), random weights, per weight format and row count m (1: a decode step;
 * more: a prefill), two ways:
 *   old: every expert on every row, added with its (mostly zero) weight by moeAccumulate, the loop
 *        src/mixers/moe.ts ran on WebGPU before moeExperts (and still runs where it cannot stack)
 *   new: the mixer as it is (moeExperts: each token's chosen experts only)
 *   node dist/bench/webgpu-moe.js [--dtypes f32,f16,q4] [--m 1,512] [--reps 30] [--experts 64] [--out DIR]
 *   node dist/bench/webgpu-moe.js --train [...]   training instead: bench/webgpu-moe-train.ts
 * (--experts fewer than 64: a smaller layer for a smoke run on a software adapter.)
 * Per case: GPU time from timestamp queries (sum over the call's dispatches, median; NaN without the
 * feature), wall clock per call with the calls queued eagerly, and for m = 1 the wall clock of a
 * recorded replay (no host encoding, as the device decode loop runs a step); max |old - new| checks
 * that both compute the same layer. Writes webgpu-moe.json (machine, command, figures) into --out
 * (default bench/results).
 */
import { choiceList, numberList } from '../src/cli/args.js';
import type { WebGpuBackend } from '../src/backend/webgpu/webgpu-backend.js';
import { MixtureOfExperts } from '../src/mixers/moe.js';
import { Mlp } from '../src/mixers/mlp.js';
import { f32ToHalf } from '../src/tensor/dtype.js';
import { scope } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { backend, machine, table, timeCalls, writeResult } from './webgpu-common.js';
import { argvOptions } from './argv.js';

// --train: training, forward and backward, dense form vs sparse (bench/webgpu-moe-train.ts, its own options)
if (process.argv.includes('--train')) {
  await import('./webgpu-moe-train.js');
  process.exit(0);
}

const arg = argvOptions(['dtypes', 'm', 'reps', 'experts', 'out']);
const dtypes = choiceList(arg('dtypes', 'f32,f16,q4'), 'dtypes', ['f32', 'f16', 'bf16', 'q4'] as const);
const ms = numberList(arg('m', '1,512'), 'm', { int: true, min: 1 });
const [reps] = numberList(arg('reps', '30'), 'reps', { int: true, min: 1 });
const out = process.argv.includes('--out') ? arg('out', '') : undefined;

/** Granite 4.0-H tiny's MoE layer. */
const [experts] = numberList(arg('experts', '64'), 'experts', { int: true, min: 6 });
const SHAPE = { d: 1536, E: experts, topK: 6, I: 512, shared: 1024 };

let seed = 1;
function random(n: number, scale: number): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) | 0;
    v[i] = (seed / 2147483648) * scale;
  }
  return v;
}
function tensor(bk: WebGpuBackend, shape: number[], dtype: string, scale: number): Tensor {
  const v = random(
    shape.reduce((a, b) => a * b, 1),
    scale,
  );
  const dt = dtype as 'f32' | 'f16' | 'bf16' | 'q4';
  return bk.upload(dt === 'f16' || dt === 'bf16' ? f32ToHalf(v, dt) : v, shape, dt).keep();
}

const gpu = await backend();
const results: Record<string, unknown>[] = [];
const { d, E, topK, I } = SHAPE;
try {
  for (const dtype of dtypes) {
    // per-expert matrices (the old loop needs whole tensors: q4 views are refused); the new mixer
    // stacks its own copy of them on the device
    seed = 7;
    const expertWeights = Array.from({ length: E }, () => ({
      up: random(2 * I * d, 1 / Math.sqrt(d)),
      down: random(d * I, 1 / Math.sqrt(I)),
    }));
    const upload = (v: Float32Array, shape: number[]): Tensor =>
      gpu.upload(dtype === 'f16' || dtype === 'bf16' ? f32ToHalf(v, dtype) : v, shape, dtype as 'f32' | 'q4').keep();
    const experts = (): Mlp[] =>
      expertWeights.map(
        (w) =>
          new Mlp(
            gpu,
            {
              up: upload(w.up, [2 * I, d]),
              gate: null,
              down: upload(w.down, [d, I]),
              upBias: null,
              gateBias: null,
              downBias: null,
            },
            'swiglu',
          ),
      );
    seed = 11;
    const router = tensor(gpu, [E, d], 'f32', 1 / Math.sqrt(d));
    const shared = new Mlp(
      gpu,
      {
        up: tensor(gpu, [2 * SHAPE.shared, d], dtype, 1 / Math.sqrt(d)),
        gate: null,
        down: tensor(gpu, [d, SHAPE.shared], dtype, 1 / Math.sqrt(SHAPE.shared)),
        upBias: null,
        gateBias: null,
        downBias: null,
      },
      'swiglu',
    );
    const opts = { topK, routing: 'topk-softmax', normTopk: true, scaling: 1, nGroup: 1, topkGroup: 1 } as const;
    const names = { router: 'router', correctionBias: '', expert: null, shared: 'shared' };
    const moe = new MixtureOfExperts(gpu, { router, correctionBias: null }, experts(), shared, opts, names);
    if (!moe.stacked) throw new Error(`${dtype}: the mixer did not take the chosen-experts path`);
    const oldExperts = experts();
    for (const m of ms) {
      const x = tensor(gpu, [m, d], 'f32', 1);
      const yNew = gpu.alloc([m, d]).keep();
      const yOld = gpu.alloc([m, d]).keep();
      const runNew = (): void => moe.step(x, yNew, {});
      // the all-experts loop of src/mixers/moe.ts before moeExperts
      const runOld = (): void =>
        scope(() => {
          const weights = moe.route(x);
          shared.apply(x, yOld, shared.workspace(m, true));
          const ye = gpu.alloc([m, d]);
          for (let e = 0; e < E; e++) {
            oldExperts[e].apply(x, ye, oldExperts[e].workspace(m, true));
            gpu.moeAccumulate(yOld, ye, weights, e);
          }
        });
      runNew();
      runOld();
      const [a, b] = [await yNew.readFloat(), await yOld.readFloat()];
      let diff = 0;
      for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
      const all = (): boolean => true;
      const tNew = await timeCalls(gpu, runNew, all, reps);
      const tOld = await timeCalls(gpu, runOld, all, Math.max(3, Math.round(reps / 4)));
      let replayNew = NaN,
        replayOld = NaN;
      if (m === 1) {
        const replay = async (fn: () => void, n: number): Promise<number> => {
          const rec = gpu.record(fn);
          await gpu.sync();
          const t0 = performance.now();
          for (let r = 0; r < n; r++) rec.replay();
          await gpu.sync();
          const t = (performance.now() - t0) / n;
          rec.dispose?.();
          return t;
        };
        replayNew = await replay(runNew, reps);
        replayOld = await replay(runOld, Math.max(3, Math.round(reps / 4)));
      }
      const r = {
        dtype,
        m,
        ...SHAPE,
        maxAbsDiff: diff,
        gpuMsOld: tOld.gpuMs,
        gpuMsNew: tNew.gpuMs,
        wallMsOld: tOld.wallMs,
        wallMsNew: tNew.wallMs,
        replayMsOld: replayOld,
        replayMsNew: replayNew,
        dispatchesOld: tOld.dispatches,
        dispatchesNew: tNew.dispatches,
      };
      results.push(r);
      console.log(
        `${dtype} m ${m}: gpu ${tOld.gpuMs.toFixed(3)} -> ${tNew.gpuMs.toFixed(3)} ms, wall ${tOld.wallMs.toFixed(3)} -> ` +
          `${tNew.wallMs.toFixed(3)} ms, replay ${replayOld.toFixed(3)} -> ${replayNew.toFixed(3)} ms, max |old - new| ${diff.toExponential(2)}`,
      );
      for (const t of [x, yNew, yOld]) t.dispose();
    }
    for (const t of moe.parameters().values()) t.dispose();
    for (const e of oldExperts) for (const t of e.parameters().values()) t.dispose();
    if (moe.stacked) for (const t of [moe.stacked.up, moe.stacked.down]) t.dispose();
  }
} finally {
  const rows: (string | number)[][] = [
    ['weights', 'm', 'gpu ms old', 'gpu ms new', 'wall ms old', 'wall ms new', 'replay ms old', 'replay ms new'],
  ];
  const f = (v: unknown): string => (Number.isFinite(v) ? (v as number).toFixed(3) : '-');
  for (const r of results)
    rows.push([
      r.dtype as string,
      r.m as number,
      f(r.gpuMsOld),
      f(r.gpuMsNew),
      f(r.wallMsOld),
      f(r.wallMsNew),
      f(r.replayMsOld),
      f(r.replayMsNew),
    ]);
  console.log(table(rows));
  const file = writeResult('webgpu-moe', { machine: machine(gpu), results }, out);
  console.log(file);
  gpu.dispose();
}
