/**
 * Training throughput: tokens per second and peak memory of full training steps (forward, mean
 * cross-entropy, backward, gradient norm, AdamW update) for a Mamba language model with the
 * reference initialisation on random tokens (by default the shape of the default training settings).
 *
 * Usage: node dist/bench/train.js [options], or mamba-ts bench train [options]
 *        (options and defaults: --help; one table in src/cli/bench-suites.ts)
 * Each thread count runs in its own child process (peak memory is per configuration). Prints a table
 * and writes a new bench/results/train-<backend>-<date>.json (train-cpu-ts-<date>.json with --kernels ts):
 * machine, load averages, command, numbers.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { numberList } from '../src/cli/args.js';
import { benchArgs, resultFile } from '../src/cli/bench-suites.js';
import { backward } from '../src/autograd/backward.js';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { missingTrainingKernels } from '../src/backend/contract/training.js';
import { WebGpuBackend } from '../src/backend/webgpu/webgpu-backend.js';
import { createBackend } from '../src/node/backends.js';
import * as F from '../src/ops/ops.js';
import { scope } from '../src/tensor/scope.js';
import { initMambaModel } from '../src/train/init.js';
import { modelConfigFor } from '../src/train/model-io.js';
import { AdamW } from '../src/train/optimizer.js';
import { Rng } from '../src/train/rng.js';
import { DEFAULT_SETTINGS } from '../src/train/settings.js';
import { byKernel } from './webgpu-common.js';

const a = benchArgs('train');
const { steps, layers: nLayer, batch: b, vocab: V } = a;
const kernels = a.kernels as 'wasm' | 'ts';
const d = a['d-model'],
  l = a['seq-len'];
const threadCounts = a.backend === 'cpu' ? numberList(a.threads, 'threads', { int: true, min: 1 }) : [1];

/** Kernels timed one by one (the CPU runs them synchronously, so wall time is the kernel's time). */
const TIMED = [
  'matmul',
  'selectiveScan',
  'selectiveScanBackward',
  'causalConv1d',
  'causalConv1dBackward',
  'crossEntropy',
  'crossEntropyBackward',
  'addRmsnorm',
  'rmsnormBackward',
  'unary',
  'unaryBackward',
  'binary',
  'reduceRows',
  'embedding',
  'embeddingBackward',
  'copy',
  'adamwStep',
];

interface Measured {
  threads: number;
  kernels: string;
  secondsPerStep: number;
  tokensPerSecond: number;
  peakRssMiB: number;
  rssIncreaseOverStepsMiB: number;
  kernelSecondsPerStep: Record<string, number>;
  parameters: number;
  vocab: number;
  backend: string;
  /** WebGPU: one profiled step's GPU time (the sum of its dispatches) and the kernels that lead it. */
  gpu?:
    | {
        msPerStep: number;
        dispatchesPerStep: number;
        top: { kernel: string; ms: number; share: number; dispatches: number }[];
      }
    | undefined;
}

/** One configuration, in this process: prints its JSON. */
async function measure(threads: number): Promise<Measured> {
  const bk = a.backend === 'cpu' ? new CpuBackend({ kernels }) : await createBackend(a.backend as 'cpu' | 'webgpu');
  if (bk instanceof CpuBackend) await bk.useThreads(threads);
  const missing = missingTrainingKernels(bk);
  if (missing.length)
    throw new Error(`the ${bk.name} backend lacks training kernels: ${missing.join(', ')}; nothing to measure`);
  const cfg = modelConfigFor({ ...DEFAULT_SETTINGS.model, dModel: d, nLayer }, V, { eos: 0, bos: 0, pad: 0 });
  const lm = await initMambaModel(cfg, { seed: 1 }, bk);
  const params = lm.parameters();
  for (const p of params.values()) p.requiresGrad = true;
  const opt = new AdamW(params, bk);
  const rng = new Rng(7);
  const kernelSeconds = new Map<string, number>();
  if (bk.name === 'cpu') {
    const rec = bk as unknown as Record<string, (...x: unknown[]) => unknown>;
    for (const k of TIMED) {
      const f = rec[k].bind(bk);
      rec[k] = (...x: unknown[]) => {
        const t0 = performance.now();
        const r = f(...x);
        kernelSeconds.set(k, (kernelSeconds.get(k) ?? 0) + (performance.now() - t0) / 1000);
        return r;
      };
    }
  }
  const step = async (): Promise<number> => {
    const ids = Int32Array.from({ length: b * l }, () => rng.int(V));
    const tg = Int32Array.from({ length: b * l }, () => rng.int(V));
    const loss = scope(() => {
      const L = F.crossEntropy(lm.forward(bk.upload(ids, [b, l], 'i32')), bk.upload(tg, [b, l], 'i32'));
      backward(L);
      return L;
    });
    const v = (await loss.readFloat())[0];
    loss.dispose();
    const norm = await opt.gradNorm();
    opt.update(1e-3, norm > 1 ? 1 / norm : 1);
    opt.zeroGrad();
    lm.parametersChanged();
    await bk.sync();
    return v;
  };
  await step(); // warm-up (JIT, first allocations)
  kernelSeconds.clear();
  const rss0 = process.resourceUsage().maxRSS;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await step();
  const seconds = (performance.now() - t0) / 1000;
  const known = [...kernelSeconds.values()].reduce((s, x) => s + x, 0);
  kernelSeconds.set('other (host code, allocation)', seconds - known);
  // WebGPU: one more step with every dispatch timed (timestamp queries), to tell the GPU's share of the
  // step from the host's (encoding, autograd, allocation) and to see which kernels lead
  let gpu: Measured['gpu'];
  if (bk instanceof WebGpuBackend && bk.g.features.has('timestamp-query')) {
    bk.startProfile();
    await step();
    const prof = await bk.stopProfile();
    const kernels = byKernel(prof);
    gpu = {
      msPerStep: +kernels.reduce((s, k) => s + k.ms, 0).toFixed(2),
      dispatchesPerStep: prof.length,
      top: kernels.slice(0, 15).map((k) => ({ ...k, ms: +k.ms.toFixed(3), share: +k.share.toFixed(4) })),
    };
  }
  const result: Measured = {
    threads,
    kernels: bk instanceof CpuBackend ? bk.kernels : '-',
    backend: bk.name,
    secondsPerStep: seconds / steps,
    tokensPerSecond: (steps * b * l) / seconds,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    rssIncreaseOverStepsMiB: (process.resourceUsage().maxRSS - rss0) / 1024,
    kernelSecondsPerStep: Object.fromEntries(
      [...kernelSeconds].sort((x, y) => y[1] - x[1]).map(([k, s]) => [k, +(s / steps).toFixed(3)]),
    ),
    parameters: lm.parameterCount(),
    vocab: cfg.vocabSize,
    gpu,
  };
  bk.dispose?.();
  return result;
}

if (a.child) {
  process.stdout.write(JSON.stringify(await measure(threadCounts[0])) + '\n');
  process.exit(0);
}

const here = fileURLToPath(import.meta.url);
const passOn = [
  '--steps',
  steps,
  '--d-model',
  d,
  '--layers',
  nLayer,
  '--seq-len',
  l,
  '--batch',
  b,
  '--vocab',
  V,
  '--backend',
  a.backend,
  '--kernels',
  kernels,
].map(String);
const loadBefore = loadavg();
const runs: Measured[] = [];
for (const t of threadCounts) {
  process.stderr.write(`measuring ${a.backend} ${kernels}, ${t} thread(s): ${steps} steps after a warm-up step\n`);
  const out = execFileSync(process.execPath, [here, '--child', '--threads', String(t), ...passOn], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  });
  runs.push(JSON.parse(out.trim().split('\n').pop()!) as Measured);
}
const loadAfter = loadavg();
const first = runs[0];
const result = {
  command: `node dist/bench/train.js ${process.argv.slice(2).join(' ')}`.trim(),
  date: new Date().toISOString(),
  machine: {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    backend: first.backend,
    loadAverage: { before: loadBefore.map((x) => +x.toFixed(2)), after: loadAfter.map((x) => +x.toFixed(2)) },
  },
  shape: { dModel: d, layers: nLayer, seqLen: l, batch: b, vocab: first.vocab, parameters: first.parameters },
  steps,
  runs,
};
console.log(
  `training step, ${first.backend} (${kernels} kernels): d_model ${d}, ${nLayer} layers, seq ${l}, batch ${b}, vocab ${first.vocab} (${(first.parameters / 1e6).toFixed(2)} M parameters); ` +
    `load average ${loadBefore[0].toFixed(2)} before, ${loadAfter[0].toFixed(2)} after, on ${cpus().length} cores`,
);
console.log('| threads | tokens/s | s/step | peak RSS | RSS rise over the steps |');
console.log('| --- | --- | --- | --- | --- |');
for (const r of runs)
  console.log(
    `| ${r.threads} | ${r.tokensPerSecond.toFixed(0)} | ${r.secondsPerStep.toFixed(2)} | ${r.peakRssMiB.toFixed(0)} MiB | ${r.rssIncreaseOverStepsMiB.toFixed(0)} MiB |`,
  );
for (const r of runs) {
  console.log(
    `seconds per step by kernel, ${r.threads} thread(s): ` +
      Object.entries(r.kernelSecondsPerStep)
        .filter(([, s]) => s >= 0.005)
        .map(([k, s]) => `${k} ${s.toFixed(2)}`)
        .join(', '),
  );
  if (r.gpu)
    console.log(
      `GPU time of one profiled step: ${r.gpu.msPerStep} ms in ${r.gpu.dispatchesPerStep} dispatches; by kernel: ` +
        r.gpu.top.map((k) => `${k.kernel} ${k.ms} ms (${k.dispatches})`).join(', '),
    );
}
const file = resultFile(`train-${first.backend}${kernels === 'ts' && first.backend === 'cpu' ? '-ts' : ''}`, a.out);
writeFileSync(file, JSON.stringify(result, null, 1) + '\n');
console.log(`wrote ${file}`);
process.exit(0);
