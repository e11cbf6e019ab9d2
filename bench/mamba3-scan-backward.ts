/**
 * Mamba-3's scan backward on the CPU, before and after its WebAssembly kernel (mamba3-backward.wat):
 *  1. the kernel alone: the TypeScript reference (reference/mamba3-scan-backward.ts, what training ran
 *     before) against the WebAssembly kernel on one thread and on two, per shape;
 *  2. a whole training step (forward, cross-entropy, backward, AdamW) of a small Mamba-3 language model
 *     (about docs/experiments.md §8's scale: d_model 64, 2 layers, 8 heads of 16, d_state 16, vocabulary
 *     256, batch 16 x 128), SISO and MIMO rank 4, one thread, with the scan's backward in TypeScript (the
 *     launcher's kernel turned off on that backend) or in WebAssembly.
 * Everything alternates within one command, `--rounds` times (each round times every variant once), so a
 * change in the machine's load reaches all of them alike; the table gives medians and the median of the
 * per-round ratios, and the JSON has every run, the load averages at each round and the command.
 *
 *   npx tsc -p . && node dist/bench/mamba3-scan-backward.js [--rounds 5] [--steps 3] [--out FILE]
 *     [--kernel-shapes task,wide] [--train true]
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { backward } from '../src/autograd/backward.js';
import { mamba3ProjWidth, type Mamba3Dims, type Mamba3ScanBackwardArgs } from '../src/backend/contract/mamba3.js';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { simdLevel } from '../src/backend/cpu/wasm/module.js';
import { resultFile } from '../src/cli/bench-suites.js';
import { filled, Rng } from '../src/mixers/init.js';
import * as F from '../src/ops/ops.js';
import { scope } from '../src/tensor/scope.js';
import { AdamW } from '../src/train/optimizer.js';
import { parseVariant, variantModel } from './mamba3-variants.js';
import { table } from './webgpu-common.js';
import { commandLine, hostMachine } from './machine.js';

const { values: o } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    steps: { type: 'string', default: '3' },
    'kernel-shapes': { type: 'string', default: 'task,task-mimo4,wide,wide-mimo4' },
    train: { type: 'string', default: 'true' },
    out: { type: 'string' },
  },
});
const rounds = Number(o.rounds),
  steps = Number(o.steps);

/** Kernel shapes: the `tasks lm` layer (d_model 64: 4 heads of 32, d_state 16, batch 16 x 128) and mamba2-130m's width. */
const SHAPES: Record<string, { b: number; l: number; dims: Mamba3Dims }> = {};
const shape = (name: string, b: number, l: number, h: number, p: number, n: number, R: number): void => {
  SHAPES[name] = {
    b,
    l,
    dims: { h, p, n, g: 1, R, S: n / 4, aFloor: 1e-4, rotateHalves: R > 1, eps: 1e-5 },
  };
};
shape('task', 16, 128, 4, 32, 16, 1);
shape('task-mimo4', 16, 128, 4, 28, 16, 4);
shape('wide', 1, 128, 24, 64, 64, 1);
shape('wide-mimo4', 1, 128, 24, 64, 64, 4);

let seed = 7;
function rand(n: number, scale: number, shift = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    a[i] = ((seed / 2 ** 32) * 2 - 1) * scale + shift;
  }
  return a;
}

function bwdArgs(bk: CpuBackend, b: number, l: number, dims: Mamba3Dims): Mamba3ScanBackwardArgs {
  const { h, p, n, R } = dims;
  const up = (shp: number[], scale = 1, shift = 0): ReturnType<CpuBackend['upload']> =>
    bk.upload(
      rand(
        shp.reduce((x, y) => x * y, 1),
        scale,
        shift,
      ),
      shp,
    );
  const mimo = R > 1;
  const a = {
    g: up([b, l, h * p]),
    proj: up([b, l, mamba3ProjWidth(dims)]),
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
    dims,
  };
  const like = (t: ReturnType<CpuBackend['upload']> | null) => (t ? bk.alloc(t.shape) : null);
  return {
    ...a,
    dProj: bk.alloc(a.proj.shape),
    dDtBias: bk.alloc([h]),
    dBNorm: bk.alloc([n]),
    dCNorm: bk.alloc([n]),
    dBBias: bk.alloc([h, R, n]),
    dCBias: bk.alloc([h, R, n]),
    dD: bk.alloc([h]),
    dMimoX: like(a.mimoX),
    dMimoZ: like(a.mimoZ),
    dMimoO: like(a.mimoO),
    dNormWeight: null,
  };
}

const median = (x: number[]): number => {
  const s = [...x].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ms = (f: () => void): number => {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
};

const ts = new CpuBackend({ kernels: 'ts' });
const wa1 = new CpuBackend({ kernels: 'wasm' });
const wa2 = new CpuBackend({ kernels: 'wasm' });
if (wa1.kernels !== 'wasm') throw new Error('this engine does not run the WebAssembly kernels');
await wa2.useThreads(2);
const load: number[][] = [];

// ---- 1. the kernel alone ----
const kernelRows: Record<string, unknown>[] = [];
for (const name of (o['kernel-shapes'] ?? '').split(',').filter((s) => s)) {
  const s = SHAPES[name];
  if (!s) throw new Error(`--kernel-shapes: unknown shape ${name} (${Object.keys(SHAPES).join(', ')})`);
  const runs: Record<'ts' | 'wasm1' | 'wasm2', number[]> = { ts: [], wasm1: [], wasm2: [] };
  const args = {
    ts: bwdArgs(ts, s.b, s.l, s.dims),
    wasm1: bwdArgs(wa1, s.b, s.l, s.dims),
    wasm2: bwdArgs(wa2, s.b, s.l, s.dims),
  };
  const bks = { ts, wasm1: wa1, wasm2: wa2 };
  for (const k of ['ts', 'wasm1', 'wasm2'] as const) bks[k].mamba3ScanBackward(args[k]); // warm-up
  for (let r = 0; r < rounds; r++) {
    load.push(loadavg().map((x) => +x.toFixed(2)));
    for (const k of ['ts', 'wasm1', 'wasm2'] as const) runs[k].push(ms(() => bks[k].mamba3ScanBackward(args[k])));
  }
  const ratio = (k: 'wasm1' | 'wasm2'): number => median(runs.ts.map((t, i) => t / runs[k][i]));
  const { h, p, n, R } = s.dims;
  kernelRows.push({
    shape: name,
    b: s.b,
    l: s.l,
    h,
    p,
    n,
    R,
    tsMs: median(runs.ts),
    wasm1Ms: median(runs.wasm1),
    wasm2Ms: median(runs.wasm2),
    speedup1: ratio('wasm1'),
    speedup2: ratio('wasm2'),
    runs,
  });
  console.log(
    `${name}: ts ${median(runs.ts).toFixed(1)} ms, wasm ${median(runs.wasm1).toFixed(1)} / ${median(runs.wasm2).toFixed(1)} ms (1 / 2 threads)`,
  );
}
if (kernelRows.length)
  console.log(
    table([
      [
        'shape',
        'b x l',
        'h, p, n, R',
        'TypeScript ms',
        'wasm 1 thread ms',
        'wasm 2 threads ms',
        'speed-up 1 / 2 threads',
      ],
      ...kernelRows.map((r) => [
        String(r.shape),
        `${r.b} x ${r.l}`,
        `${r.h}, ${r.p}, ${r.n}, ${r.R}`,
        (r.tsMs as number).toFixed(1),
        (r.wasm1Ms as number).toFixed(1),
        (r.wasm2Ms as number).toFixed(1),
        `${(r.speedup1 as number).toFixed(1)}x / ${(r.speedup2 as number).toFixed(1)}x`,
      ]),
    ]),
  );

// ---- 2. training steps, the scan's backward in TypeScript or WebAssembly (one thread) ----
const trainRows: Record<string, unknown>[] = [];
if (o.train === 'true') {
  const d = 64,
    b = 16,
    l = 128,
    V = 256;
  const launcher = (wa1 as unknown as { wasm: Record<string, unknown> }).wasm;
  const useTs = (on: boolean): void => {
    if (on) launcher.mamba3ScanBackward = () => false;
    else delete launcher.mamba3ScanBackward;
  };
  for (const [vname, P] of [
    ['mamba3-16', 16],
    ['mimo4-16', 16],
  ] as const) {
    const v = parseVariant(vname);
    const rng = new Rng(1234);
    const emb = filled(wa1, [V, d], () => 0.02 * rng.normal());
    const model = variantModel(wa1, v, { d, P, layers: 2 }, emb, 100);
    const params = model.parameters();
    for (const t of params.values()) t.requiresGrad = true;
    const opt = new AdamW(params, wa1);
    const data = new Rng(7);
    const step = async (): Promise<void> => {
      const ids = Int32Array.from({ length: b * l }, () => data.int(V));
      const tg = Int32Array.from({ length: b * l }, () => data.int(V));
      const loss = scope(() => {
        const L = F.crossEntropy(model.forward(wa1.upload(ids, [b, l], 'i32')), wa1.upload(tg, [b, l], 'i32'));
        backward(L);
        return L;
      });
      loss.dispose();
      const norm = await opt.gradNorm();
      opt.update(1e-3, norm > 1 ? 1 / norm : 1);
      opt.zeroGrad();
      model.parametersChanged();
    };
    const runs: Record<'ts' | 'wasm', number[]> = { ts: [], wasm: [] };
    for (const k of ['ts', 'wasm'] as const) {
      useTs(k === 'ts');
      await step(); // warm-up
    }
    for (let r = 0; r < rounds; r++) {
      load.push(loadavg().map((x) => +x.toFixed(2)));
      for (const k of ['ts', 'wasm'] as const) {
        useTs(k === 'ts');
        const t0 = performance.now();
        for (let s = 0; s < steps; s++) await step();
        runs[k].push((performance.now() - t0) / 1000 / steps);
      }
    }
    useTs(false);
    const speedup = median(runs.ts.map((t, i) => t / runs.wasm[i]));
    trainRows.push({
      variant: vname,
      d,
      headdim: P,
      layers: 2,
      b,
      l,
      tsS: median(runs.ts),
      wasmS: median(runs.wasm),
      speedup,
      runs,
    });
    console.log(
      `${vname}: ${median(runs.ts).toFixed(3)} s/step with the TypeScript backward, ${median(runs.wasm).toFixed(3)} with WebAssembly`,
    );
  }
  console.log(
    table([
      ['variant (d 64, 2 layers, 16 x 128)', 's/step, TypeScript backward', 's/step, wasm backward', 'steps/s ratio'],
      ...trainRows.map((r) => [
        String(r.variant),
        (r.tsS as number).toFixed(3),
        (r.wasmS as number).toFixed(3),
        `${(r.speedup as number).toFixed(2)}x`,
      ]),
    ]),
  );
}
load.push(loadavg().map((x) => +x.toFixed(2)));
console.log(`load averages (1, 5, 15 min) at each round: ${load.map((x) => x.join('/')).join(', ')}`);

const file = o.out ?? resultFile('mamba3-scan-backward');
writeFileSync(
  file,
  `${JSON.stringify(
    {
      machine: {
        ...hostMachine(),
        simd: simdLevel(),
        loadAverageAtEachRound: load,
        date: new Date().toISOString(),
        command: commandLine(),
      },
      kernel: kernelRows,
      train: trainRows,
    },
    null,
    2,
  )}\n`,
);
console.log('wrote', file);
for (const bk of [ts, wa1, wa2]) bk.dispose();
