/**
 * Training one mixture-of-experts layer on WebGPU (forward and backward: the gradients of the tokens'
 * rows, the router and the experts' stacks) in Granite 4.0-H tiny's public shape (hidden 1536, 64
 * experts, top-6, expert intermediate 512: the granitehybrid GGUF metadata of ibm-granite/granite-4.0-h-tiny;
 * the shared expert left out: the same in both), f32 weights stacked as Granite's input_linear /
 * output_linear parameters, random weights, per row count m, two ways:
 *   dense:  every expert on every row weighted by its routing column (the training form of
 *           src/mixers/moe-train.ts before the sparse one, and still its fallback for unstacked experts)
 *   sparse: the mixer's training form as it is (ops/moe-sparse.ts: each expert over its routed pairs)
 *   node dist/bench/webgpu-moe-train.js [--m 512,2048] [--reps 5] [--experts 64] [--check] [--out DIR]
 * (--experts fewer than 64, --hidden and --inter below 1536 and 512: a smaller layer for a smoke run on
 * a software adapter.)
 * Per case: the work counted, not timed: the products' FLOPs (dense 18·m·E·d·I: the up and down
 * products forward, their input and weight gradients; sparse the same over the routed rows, m·K ideal,
 * and as executed: a forward or input-gradient tile runs 64 of an expert's rows, a weight-gradient
 * step 16, so each expert's rows rounded up, from its actual count read back), and the dispatches of one
 * step (counted by wrapping the dispatcher); then timed: GPU time from timestamp queries (median; NaN
 * without the feature) and wall clock per step, synced. --check: max |dense - sparse| of the output and
 * of each gradient. Writes webgpu-moe-train.json (machine, command, figures) into --out (default
 * bench/results).
 */
import { numberList } from '../src/cli/args.js';
import { backward } from '../src/autograd/backward.js';
import type { WebGpuBackend } from '../src/backend/webgpu/webgpu-backend.js';
import { MixtureOfExperts } from '../src/mixers/moe.js';
import { moeForward } from '../src/mixers/moe-train.js';
import { Mlp } from '../src/mixers/mlp.js';
import { scope } from '../src/tensor/scope.js';
import { Tensor } from '../src/tensor/tensor.js';
import { backend, machine, table, writeResult } from './webgpu-common.js';
import { argvOptions } from './argv.js';

const arg = argvOptions(['m', 'reps', 'experts', 'hidden', 'inter', 'check', 'out', 'train']);
const ms = numberList(arg('m', '512,2048'), 'm', { int: true, min: 1 });
const [reps] = numberList(arg('reps', '5'), 'reps', { int: true, min: 1 });
const [experts] = numberList(arg('experts', '64'), 'experts', { int: true, min: 6 });
const check = process.argv.includes('--check');
const out = process.argv.includes('--out') ? arg('out', '') : undefined;

const [hidden] = numberList(arg('hidden', '1536'), 'hidden', { int: true, min: 1 });
const [inter] = numberList(arg('inter', '512'), 'inter', { int: true, min: 1 });
const SHAPE = { d: hidden, E: experts, topK: 6, I: inter };

let seed = 1;
function random(n: number, scale: number): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) | 0;
    v[i] = (seed / 2147483648) * scale;
  }
  return v;
}

/** Rows [start, start + count) of a matrix, as a view (an expert inside its stack). */
function rowBlock(t: Tensor, start: number, count: number): Tensor {
  return new Tensor(t.backend, t.storage, [count, t.cols], t.dtype, t.offset + start * t.ld, t.ld, t.base ?? t);
}

const gpu = await backend();
const results: Record<string, unknown>[] = [];
const { d, E, topK: K, I } = SHAPE;

// dispatches per step: the dispatcher's `run`, counted
let dispatches = 0;
const run0 = gpu.d.run.bind(gpu.d);
gpu.d.run = ((...a: Parameters<typeof run0>) => {
  dispatches++;
  run0(...a);
}) as typeof gpu.d.run;

try {
  seed = 7;
  const up = gpu.upload(random(E * 2 * I * d, 1 / Math.sqrt(d)), [E * 2 * I, d]).keep();
  const down = gpu.upload(random(E * d * I, 1 / Math.sqrt(I)), [E * d, I]).keep();
  const router = gpu.upload(random(E * d, 1 / Math.sqrt(d)), [E, d]).keep();
  const mlps = Array.from(
    { length: E },
    (_, j) =>
      new Mlp(
        gpu,
        {
          up: rowBlock(up, j * 2 * I, 2 * I),
          gate: null,
          down: rowBlock(down, j * d, d),
          upBias: null,
          gateBias: null,
          downBias: null,
        },
        'swiglu',
      ),
  );
  const opts = { topK: K, routing: 'topk-softmax', normTopk: true, scaling: 1, nGroup: 1, topkGroup: 1 } as const;
  const names = { router: 'router.layer.weight', correctionBias: '', expert: null, shared: 'shared' };
  const stacks = new Map([
    ['input_linear.weight', up],
    ['output_linear.weight', down],
  ]);
  const moe = new MixtureOfExperts(gpu, { router, correctionBias: null }, mlps, null, opts, names, stacks);
  if (moe.stacked?.up !== up)
    throw new Error('the experts were not taken as their stacks (a stack past the device limits?)');
  const params = moe.parameters();
  for (const p of params.values()) p.requiresGrad = true;
  // the dense form: the same mixer without its stacks
  const dense = {
    backend: gpu,
    nExperts: E,
    w: moe.w,
    opts,
    experts: moe.experts,
    shared: null,
    stackedExperts: stacks,
    stacked: null,
  };
  const clearGrads = (): void => {
    for (const p of params.values()) {
      p.grad?.dispose();
      p.grad = undefined;
    }
  };

  for (const m of ms) {
    seed = 11 + m;
    const x = gpu.upload(random(m * d, 1), [m, d]).keep();
    x.requiresGrad = true;
    const G = gpu.upload(random(m * d, 1 / Math.sqrt(m * d)), [m, d]).keep();
    console.error(`m ${m}: counting`);
    const step = (sparse: boolean): Tensor => {
      const y = sparse ? moe.forward(x) : moeForward(dense, x);
      backward(y, G);
      return y;
    };
    // the routed rows per expert (what the sparse kernels run), read back
    const pr = scope(() => gpu.moePairs(moe.route(x), K));
    const counts = Int32Array.from(await pr.count.read());
    for (const t of [pr.ids, pr.wts, pr.count, pr.list]) t.dispose();
    const routed = counts.reduce((a, b) => a + b, 0);
    const rounded = (t: number): number => counts.reduce((a, n) => a + Math.ceil(n / t) * t, 0);
    const flops = (rows: number): number => 2 * rows * d * 2 * I + 2 * rows * I * d; // up and down products
    const denseFlops = 3 * flops(m * E);
    const sparseIdeal = 3 * flops(routed);
    const sparseExec = 2 * flops(rounded(64)) + flops(rounded(16)); // forward, input grads; weight grads

    let diff: Record<string, number> | null = null;
    if (check) {
      const grab = async (sparse: boolean): Promise<Map<string, Float32Array>> => {
        clearGrads();
        x.grad?.dispose();
        x.grad = undefined;
        const got = new Map<string, Float32Array>();
        const y = scope(() => step(sparse).keep());
        got.set('out', await y.readFloat());
        y.dispose();
        got.set('dx', await x.grad!.readFloat());
        for (const [n, p] of params) got.set(`d ${n}`, await p.grad!.readFloat());
        return got;
      };
      const [a, b] = [await grab(false), await grab(true)];
      diff = {};
      for (const [k, va] of a) {
        const vb = b.get(k)!;
        let e = 0;
        for (let i = 0; i < va.length; i++) e = Math.max(e, Math.abs(va[i] - vb[i]));
        diff[k] = e;
      }
    }

    const time = async (sparse: boolean): Promise<{ gpuMs: number; wallMs: number; dispatches: number }> => {
      const once = (): void => {
        clearGrads();
        scope(() => void step(sparse));
      };
      once(); // pipelines compiled
      await gpu.sync();
      dispatches = 0;
      once();
      const n = dispatches;
      await gpu.sync();
      const per: number[] = [];
      if (gpu.g.features.has('timestamp-query'))
        for (let r = 0; r < reps; r++) {
          gpu.startProfile();
          once();
          per.push((await gpu.stopProfile()).reduce((a, [, ns]) => a + ns, 0) / 1e6);
        }
      per.sort((p, q) => p - q);
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) {
        once();
        await gpu.sync();
      }
      return {
        gpuMs: per.length ? per[Math.floor(per.length / 2)] : NaN,
        wallMs: (performance.now() - t0) / reps,
        dispatches: n,
      };
    };
    console.error(`m ${m}: timing`);
    const tDense = await time(false);
    const tSparse = await time(true);
    const r = {
      m,
      ...SHAPE,
      routedRows: routed,
      expertsChosenByNone: counts.filter((n) => n === 0).length,
      gflopsDense: denseFlops / 1e9,
      gflopsSparseIdeal: sparseIdeal / 1e9,
      gflopsSparseExecuted: sparseExec / 1e9,
      dispatchesDense: tDense.dispatches,
      dispatchesSparse: tSparse.dispatches,
      gpuMsDense: tDense.gpuMs,
      gpuMsSparse: tSparse.gpuMs,
      wallMsDense: tDense.wallMs,
      wallMsSparse: tSparse.wallMs,
      maxAbsDiff: diff,
    };
    results.push(r);
    console.log(JSON.stringify(r));
    x.dispose();
    G.dispose();
  }
} finally {
  const rows: (string | number)[][] = [
    [
      'm',
      'GFLOP dense',
      'GFLOP sparse (m·K)',
      'GFLOP sparse run',
      'dispatches dense',
      'dispatches sparse',
      'gpu ms dense',
      'gpu ms sparse',
      'wall ms dense',
      'wall ms sparse',
    ],
  ];
  const f = (v: unknown, p = 3): string => (Number.isFinite(v) ? (v as number).toFixed(p) : '-');
  for (const r of results)
    rows.push([
      r.m as number,
      f(r.gflopsDense, 1),
      f(r.gflopsSparseIdeal, 1),
      f(r.gflopsSparseExecuted, 1),
      r.dispatchesDense as number,
      r.dispatchesSparse as number,
      f(r.gpuMsDense),
      f(r.gpuMsSparse),
      f(r.wallMsDense),
      f(r.wallMsSparse),
    ]);
  console.log(table(rows));
  const file = writeResult('webgpu-moe-train', { machine: machine(gpu as WebGpuBackend), results }, out);
  console.log(file);
  gpu.dispose();
}
