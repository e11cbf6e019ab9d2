/**
 * Training throughput: tokens per second and peak memory of full training steps (forward, mean
 * cross-entropy, backward, gradient norm, AdamW update) for a Mamba language model with the
 * reference initialisation on random tokens. Default shape: d_model 256, 4 layers, sequence length
 * 256, batch 8, vocabulary 4096 (the default BPE size).
 *
 * Usage: npx tsc -p . && node dist/bench/train.js [--steps 3] [--d-model 256] [--layers 4] [--seq-len 256]
 *          [--batch 8] [--vocab 4096] [--backend cpu|webgpu]
 * Prints a table and writes bench/results/train-<backend>.json (machine, command, numbers).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { backward } from '../src/autograd/backward.js';
import { missingTrainingKernels } from '../src/backend/training-kernels.js';
import { createBackend } from '../src/node/backends.js';
import * as F from '../src/ops/ops.js';
import { scope } from '../src/tensor/scope.js';
import { initMambaModel } from '../src/train/init.js';
import { modelConfigFor } from '../src/train/model-io.js';
import { AdamW } from '../src/train/optimizer.js';
import { Rng } from '../src/train/rng.js';
import { DEFAULT_SETTINGS } from '../src/train/settings.js';

const { values: a } = parseArgs({
  options: {
    steps: { type: 'string', default: '3' }, 'd-model': { type: 'string', default: '256' }, layers: { type: 'string', default: '4' },
    'seq-len': { type: 'string', default: '256' }, batch: { type: 'string', default: '8' }, vocab: { type: 'string', default: '4096' },
    backend: { type: 'string', default: 'cpu' },
  },
});
const steps = Number(a.steps), d = Number(a['d-model']), nLayer = Number(a.layers), l = Number(a['seq-len']), b = Number(a.batch), V = Number(a.vocab);

const bk = await createBackend(a.backend!);
const missing = missingTrainingKernels(bk);
if (missing.length) {
  console.log(`the ${bk.name} backend lacks training kernels: ${missing.join(', ')}; nothing to measure`);
  process.exit(0);
}
const cfg = modelConfigFor({ ...DEFAULT_SETTINGS.model, dModel: d, nLayer }, V, { eos: 0, bos: 0, pad: 0 });
const lm = await initMambaModel(cfg, { seed: 1 }, bk);
const params = lm.parameters();
for (const p of params.values()) p.requiresGrad = true;
const opt = new AdamW(params, bk);
const rng = new Rng(7);
const kernelSeconds = new Map<string, number>();
// Time per kernel (the CPU runs them synchronously, so wall time is the kernel's time).
if (bk.name === 'cpu') {
  const rec = bk as unknown as Record<string, (...x: unknown[]) => unknown>;
  for (const k of ['matmul', 'selectiveScan', 'selectiveScanBackward', 'causalConv1d', 'causalConv1dBackward', 'crossEntropy', 'crossEntropyBackward', 'adamwStep']) {
    const f = rec[k]!.bind(bk);
    rec[k] = (...x: unknown[]) => { const t0 = performance.now(); const r = f(...x); kernelSeconds.set(k, (kernelSeconds.get(k) ?? 0) + (performance.now() - t0) / 1000); return r; };
  }
}

async function step(): Promise<number> {
  const ids = Int32Array.from({ length: b * l }, () => rng.int(V));
  const tg = Int32Array.from({ length: b * l }, () => rng.int(V));
  const loss = scope(() => {
    const L = F.crossEntropy(lm.forward(bk.upload(ids, [b, l], 'i32')), bk.upload(tg, [b, l], 'i32'));
    backward(L);
    return L;
  });
  const v = (await loss.readFloat())[0]!;
  const norm = await opt.gradNorm();
  opt.update(1e-3, norm > 1 ? 1 / norm : 1);
  opt.zeroGrad();
  lm.parametersChanged();
  await bk.sync();
  return v;
}

const rss0 = process.resourceUsage().maxRSS;
await step(); // warm-up (JIT, first allocations)
kernelSeconds.clear();
const t0 = performance.now();
for (let i = 0; i < steps; i++) await step();
const seconds = (performance.now() - t0) / 1000;
const tokensPerSecond = (steps * b * l) / seconds;
const peakRssMiB = process.resourceUsage().maxRSS / 1024;
const result = {
  command: `node dist/bench/train.js ${process.argv.slice(2).join(' ')}`.trim(), date: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, memoryGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version, backend: bk.name, loadAverage1m: +loadavg()[0]!.toFixed(2) },
  shape: { dModel: d, layers: nLayer, seqLen: l, batch: b, vocab: cfg.vocabSize, parameters: lm.parameterCount() },
  steps, secondsPerStep: seconds / steps, tokensPerSecond, peakRssMiB, rssIncreaseOverStepsMiB: (process.resourceUsage().maxRSS - rss0) / 1024,
  kernelSecondsPerStep: Object.fromEntries([...kernelSeconds].map(([k, s]) => [k, +(s / steps).toFixed(3)])),
};
console.log(`training step, ${bk.name}: d_model ${d}, ${nLayer} layers, seq ${l}, batch ${b}, vocab ${cfg.vocabSize} (${(lm.parameterCount() / 1e6).toFixed(2)} M parameters); load average ${loadavg()[0]!.toFixed(2)} on ${cpus().length} cores`);
console.log('| tokens/s | s/step | peak RSS | RSS rise over the steps |');
console.log('| --- | --- | --- | --- |');
console.log(`| ${tokensPerSecond.toFixed(0)} | ${(seconds / steps).toFixed(2)} | ${peakRssMiB.toFixed(0)} MiB | ${result.rssIncreaseOverStepsMiB.toFixed(0)} MiB |`);
if (kernelSeconds.size) console.log('seconds per step by kernel: ' + [...kernelSeconds].sort((x, y) => y[1] - x[1]).map(([k, s]) => `${k} ${(s / steps).toFixed(2)}`).join(', '));
const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, `train-${bk.name}.json`), JSON.stringify(result, null, 1) + '\n');
console.log(`wrote ${join(dir, `train-${bk.name}.json`)}`);
process.exit(0);
