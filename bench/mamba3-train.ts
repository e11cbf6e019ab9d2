import { loadavg } from 'node:os';
import { backward } from '../src/autograd/backward.js';
import type { Backend } from '../src/backend/backend.js';
import { CpuBackend, type CpuKernels } from '../src/backend/cpu/cpu-backend.js';
import type { WebGpuBackend } from '../src/backend/webgpu/webgpu-backend.js';
import { benchArgs } from '../src/cli/bench-suites.js';
import { filled, Rng } from '../src/mixers/init.js';
import type { LanguageModel, LmConfig } from '../src/models/lm.js';
import * as F from '../src/ops/ops.js';
import { scope } from '../src/tensor/scope.js';
import { AdamW } from '../src/train/optimizer.js';
import { parseVariant, type Variant, variantModel } from './mamba3-variants.js';
import type { SsdPath } from '../src/backend/webgpu/kernel-host.js';
import { backend as webgpuBackend, byKernel, table, writeResult } from './webgpu-common.js';
import { commandLine, hostMachine } from './machine.js';

/**
 * Training step time of Mamba-3 against Mamba-2 at the same width: full steps (forward, mean
 * cross-entropy, backward, gradient norm, AdamW) of a language model with fresh weights (the official
 * initialisations) on random tokens, for the variants of bench/mamba3-variants.ts (mamba2-128,
 * mamba3-64, mimo4-64 ...).
 *   node dist/bench/mamba3-train.js [--backend cpu|webgpu] [--variants ...] [--out DIR]   (--help: options)
 * The variants are timed in turn, `rounds` times, so a change in the machine's load reaches all of
 * them alike; the table gives each variant's median seconds per step (and tokens/s) and the median over
 * rounds of its ratio to the first variant of the same round. A step ends when the gradient norm is
 * read back (the optimiser needs it), so the wall time covers the GPU's work. On WebGPU one more step per
 * variant is profiled (timestamp queries, where the adapter has them) and its GPU time listed by kernel.
 * Mamba-3's backward on WebGPU takes the path its forward takes (`ssdPath`: auto = chunked past 32 tokens):
 * the token scan's backward (one workgroup per (sequence, head) walking the sequence) or the chunked backward
 * (Mamba-2's SSD backward plus the mapping's adjoints, kernels/mamba3-chunked-backward.ts).
 * --ssd-paths sequential,chunked times every variant on each path (rows variant@path; the forward's path
 * changes with it), and the GPU profile's rows split the backward's kernels from the forward's.
 */
const a = benchArgs('mamba3-train');
const d = a['d-model'],
  P = a.headdim,
  b = a.batch,
  l = a['seq-len'],
  V = a.vocab;
const paths = a['ssd-paths'].split(',').map((s) => s.trim());
for (const p of paths)
  if (!['auto', 'sequential', 'chunked'].includes(p))
    throw new Error(`--ssd-paths: "${p}" is not auto, sequential or chunked`);
if (a.backend !== 'webgpu' && paths.some((p) => p !== 'auto'))
  throw new Error("--ssd-paths: the scan paths are the WebGPU backend's (add --backend webgpu)");
// each variant once per scan path (named variant@path when there are several)
const variants: (Variant & { path: SsdPath })[] = a.variants.split(',').flatMap((s) => {
  const v = parseVariant(s);
  return paths.map((p) => ({ ...v, name: paths.length > 1 ? `${v.name}@${p}` : v.name, path: p as SsdPath }));
});
const bk: Backend =
  a.backend === 'webgpu' ? await webgpuBackend() : new CpuBackend({ kernels: a.kernels as CpuKernels });
const shape = { d, P, layers: a.layers };

interface Trainer {
  path: SsdPath;
  model: LanguageModel<LmConfig>;
  opt: AdamW;
  rng: Rng;
}

function trainer(i: number): Trainer {
  const rng = new Rng(1234 + i);
  const emb = filled(bk, [V, d], () => 0.02 * rng.normal()); // its own: every variant trains its embedding
  const model = variantModel(bk, variants[i], shape, emb, 100 + i);
  const params = model.parameters();
  for (const p of params.values()) p.requiresGrad = true;
  return { path: variants[i].path, model, opt: new AdamW(params, bk), rng: new Rng(7) };
}

/** One training step; resolves once the gradient norm is back on the host. */
async function step(t: Trainer): Promise<number> {
  if (a.backend === 'webgpu') (bk as WebGpuBackend).options.ssdPath = t.path;
  const ids = Int32Array.from({ length: b * l }, () => t.rng.int(V));
  const tg = Int32Array.from({ length: b * l }, () => t.rng.int(V));
  const loss = scope(() => {
    const L = F.crossEntropy(t.model.forward(bk.upload(ids, [b, l], 'i32')), bk.upload(tg, [b, l], 'i32'));
    backward(L);
    return L;
  });
  loss.dispose();
  const norm = await t.opt.gradNorm();
  t.opt.update(1e-3, norm > 1 ? 1 / norm : 1);
  t.opt.zeroGrad();
  t.model.parametersChanged();
  return norm;
}

const trainers = variants.map((_, i) => trainer(i));
for (const t of trainers) await step(t); // warm-up: pipelines, allocations, JIT
const secs: number[][] = variants.map(() => []);
const ratios: number[][] = variants.map(() => []);
const load: number[][] = [];
for (let r = 0; r < a.rounds; r++) {
  load.push(loadavg().map((x) => +x.toFixed(2)));
  const round: number[] = [];
  for (let i = 0; i < variants.length; i++) {
    const t0 = performance.now();
    for (let s = 0; s < a.steps; s++) await step(trainers[i]);
    const x = (performance.now() - t0) / 1000 / a.steps;
    round.push(x);
    secs[i].push(x);
  }
  for (let i = 0; i < variants.length; i++) ratios[i].push(round[i] / round[0]);
  console.log(`round ${r + 1}: ${variants.map((v, i) => `${v.name} ${round[i].toFixed(4)}`).join(', ')} s/step`);
}
load.push(loadavg().map((x) => +x.toFixed(2)));

// one profiled step per variant: GPU time by kernel
const profiles: { kernel: string; ms: number; share: number; dispatches: number }[][] = [];
const gpu = a.backend === 'webgpu' ? (bk as WebGpuBackend) : null;
if (gpu?.g.features.has('timestamp-query'))
  for (const t of trainers) {
    gpu.startProfile();
    await step(t);
    profiles.push(byKernel(await gpu.stopProfile()).slice(0, 12));
  }

const median = (x: number[]): number => {
  const s = [...x].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const results = variants.map((v, i) => {
  let layerParams = 0;
  for (const t of trainers[i].model.blocks[0].mixer.parameters().values())
    layerParams += t.shape.reduce((x, y) => x * y, 1);
  return {
    variant: v.name,
    ssdPath: v.path,
    layer: v.layer,
    dState: v.n,
    mimoRank: v.R,
    parametersPerLayer: layerParams,
    parameters: trainers[i].model.parameterCount(),
    secondsPerStep: median(secs[i]),
    tokensPerSecond: (b * l) / median(secs[i]),
    runs: secs[i],
    ratioToFirst: median(ratios[i]),
    ratios: ratios[i],
    ...(profiles[i] ? { gpuMsByKernel: profiles[i] } : {}),
  };
});
console.log(
  table([
    ['variant', 'params/layer', 's/step (median)', 'tok/s', `time vs ${variants[0].name}`],
    ...results.map((r) => [
      r.variant,
      r.parametersPerLayer,
      r.secondsPerStep.toFixed(4),
      r.tokensPerSecond.toFixed(0),
      `${r.ratioToFirst.toFixed(3)}x`,
    ]),
  ]),
);
for (const [i, p] of profiles.entries())
  console.log(
    `${variants[i].name}, GPU ms by kernel (one step): ` +
      p
        .slice(0, 6)
        .map((k) => `${k.kernel} ${k.ms.toFixed(2)}`)
        .join(', '),
  );

const machine = {
  ...hostMachine(),
  backend: bk.name,
  ...(gpu ? { gpu: gpu.describe() } : { cpuThreads: (bk as CpuBackend).threads, cpuKernels: a.kernels }),
  loadAverageAtEachRound: load,
  date: new Date().toISOString(),
  command: commandLine(),
};
const settings = {
  dModel: d,
  layers: a.layers,
  expand: 2,
  heads: (2 * d) / P,
  headdim: P,
  vocab: V,
  batch: b,
  seqLen: l,
  steps: a.steps,
  rounds: a.rounds,
};
console.log('wrote', writeResult(a.name, { machine, settings, results }, a.out));
bk.dispose?.();
