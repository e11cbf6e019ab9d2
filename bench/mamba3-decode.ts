import { loadavg } from 'node:os';
import type { Backend } from '../src/backend/backend.js';
import { CpuBackend, type CpuKernels } from '../src/backend/cpu/cpu-backend.js';
import { GREEDY } from '../src/backend/sampling.js';
import type { WebGpuBackend } from '../src/backend/webgpu/webgpu-backend.js';
import { benchArgs } from '../src/cli/bench-suites.js';
import { deviceTokens } from '../src/generate/device-loop.js';
import { filled, Rng } from '../src/mixers/init.js';
import type { LanguageModel, LmConfig } from '../src/models/lm.js';
import { parseVariant, variantModel, type Variant } from './mamba3-variants.js';
import { backend as webgpuBackend, table, writeResult } from './webgpu-common.js';
import { commandLine, hostMachine } from './machine.js';

/**
 * Decode speed of Mamba-3 against Mamba-2 at the same width (issue 18, item 4): batch-1 tokens/s of a
 * language model with fresh weights (the official initialisations; mamba2-130m's shape by default:
 * d_model 768, 24 layers, expand 2, headdim 64, vocabulary 50280), and the decode state per layer.
 *   node dist/bench/mamba3-decode.js [--backend cpu|webgpu] [--variants ...] [--out DIR]   (--help: options)
 * Variants name the layer and its d_state: mamba2-128 (Mamba-2: conv window + SSD state), mamba3-64
 * (Mamba-3 SISO), mimo4-64 (Mamba-3 MIMO of rank 4). Every variant has the same d_model, heads and
 * headdim, and shares one embedding (tied lm_head), so they differ only in the mixers.
 *
 * The variants are timed in turn, `rounds` times (round 1: every variant, then round 2 ...), so a change
 * in the machine's load reaches all of them alike; the table gives each variant's median tokens/s and
 * the median over rounds of its ratio to the first variant of the same round. CPU: the argmax of each
 * step's logits is read back and fed as the next token (as generation does); with the default kernels
 * both layers' scans run in WebAssembly (ssd.wat, mamba3.wat), `--kernels ts` runs every kernel's
 * TypeScript reference. WebGPU: the device loop
 * (step, sampling on the GPU, ids read back with two tokens in flight), as bench/webgpu-decode.ts.
 *
 * MIMO's point (docs/mamba3.md): R outer products per token on the same (p, n) state, so a decode step
 * that is bound by reading and writing the state does R times the arithmetic for about the same time.
 */
const a = benchArgs('mamba3-decode');
const d = a['d-model'],
  P = a.headdim,
  e = 2 * d;
if (e % P !== 0) throw new Error(`--headdim ${P} must divide d_inner ${e} (2 x --d-model)`);
const h = e / P;

const variants = a.variants.split(',').map(parseVariant);

const bk: Backend =
  a.backend === 'webgpu' ? await webgpuBackend() : new CpuBackend({ kernels: a.kernels as CpuKernels });
const rng = new Rng(1234);
// One embedding (and tied lm_head) for every variant: the same bytes per token outside the mixers.
const emb = filled(bk, [a.vocab, d], () => 0.02 * rng.normal());
const build = (v: Variant, seed: number): LanguageModel<LmConfig> =>
  variantModel(bk, v, { d, P, layers: a.layers }, emb, seed);

/** f32 numbers of one layer's decode state (per sequence), by the mixer's own state shapes. */
function stateFloats(m: LanguageModel<LmConfig>): { total: number; parts: Record<string, number> } {
  const parts: Record<string, number> = {};
  let total = 0;
  for (const [k, s] of Object.entries(m.blocks[0].mixer.stateShapes())) {
    parts[k] = s.reduce((x, y) => x * y, 1);
    total += parts[k];
  }
  return { total, parts };
}

/** Tokens/s of `steps` greedy decode steps from one fresh state (CPU: argmax read back each step). */
async function rateCpu(m: LanguageModel<LmConfig>, steps: number): Promise<number> {
  const c = bk as CpuBackend;
  const state = m.initState(1);
  const out = c.zeros([1], 'i32').keep();
  let token = 1;
  for (let i = 0; i < 4; i++) c.argmax(out, m.stepIds([token], state)); // warm-up: workspaces, JIT
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    c.argmax(out, m.stepIds([token], state));
    token = (c.readSync(out) as Int32Array)[0];
  }
  const s = (performance.now() - t0) / 1000;
  state.dispose();
  out.dispose();
  return steps / s;
}

/** Tokens/s of the device loop for about `seconds` (calibrated on a first short run). */
async function rateGpu(m: LanguageModel<LmConfig>, seconds: number): Promise<{ rate: number; tokens: number }> {
  const prompt = bk.upload(Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), [1, 8], 'i32').keep();
  const run = async (n: number): Promise<number> => {
    const state = m.initState(1);
    const logits = m.forward(prompt, { state, lastOnly: true });
    let got = 0;
    const t0 = performance.now();
    for await (const _ of deviceTokens(m, state, logits, { maxNewTokens: n, sampling: GREEDY, lookahead: 2 })) got++;
    const ms = performance.now() - t0;
    logits.dispose();
    state.dispose();
    return (got / ms) * 1000;
  };
  await run(32); // pipelines compiled, clocks up
  const r0 = await run(64);
  const n = Math.max(64, Math.round(r0 * seconds));
  const rate = await run(n);
  prompt.dispose();
  return { rate, tokens: n };
}

const models = variants.map((v, i) => build(v, 100 + i));
const rates: number[][] = variants.map(() => []);
const ratios: number[][] = variants.map(() => []);
const load: number[][] = [];
for (let r = 0; r < a.rounds; r++) {
  load.push(loadavg().map((x) => +x.toFixed(2)));
  const round: number[] = [];
  for (let i = 0; i < variants.length; i++) {
    const x = a.backend === 'webgpu' ? (await rateGpu(models[i], a.seconds)).rate : await rateCpu(models[i], a.steps);
    round.push(x);
    rates[i].push(x);
  }
  for (let i = 0; i < variants.length; i++) ratios[i].push(round[i] / round[0]);
  console.log(`round ${r + 1}: ${variants.map((v, i) => `${v.name} ${round[i].toFixed(2)}`).join(', ')} tok/s`);
}
load.push(loadavg().map((x) => +x.toFixed(2)));

const median = (x: number[]): number => {
  const s = [...x].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const results = variants.map((v, i) => {
  const st = stateFloats(models[i]);
  const mx = models[i].blocks[0].mixer;
  let layerParams = 0;
  for (const t of mx.parameters().values()) layerParams += t.shape.reduce((x, y) => x * y, 1);
  return {
    variant: v.name,
    layer: v.layer,
    dState: v.n,
    mimoRank: v.R,
    heads: h,
    headdim: P,
    parametersPerLayer: layerParams,
    parameters: models[i].parameterCount(),
    stateBytesPerLayer: 4 * st.total,
    stateFloatsByPart: st.parts,
    stateBytesPerSequence: 4 * st.total * a.layers,
    tokensPerSecond: median(rates[i]),
    runs: rates[i],
    ratioToFirst: median(ratios[i]),
    ratios: ratios[i],
  };
});
console.log(
  table([
    ['variant', 'params/layer', 'state/layer', 'state/seq', 'tok/s (median)', `vs ${variants[0].name}`],
    ...results.map((r) => [
      r.variant,
      r.parametersPerLayer,
      `${r.stateBytesPerLayer} B`,
      `${(r.stateBytesPerSequence / 2 ** 20).toFixed(2)} MiB`,
      r.tokensPerSecond.toFixed(2),
      `${r.ratioToFirst.toFixed(3)}x`,
    ]),
  ]),
);

const machine = {
  ...hostMachine(),
  backend: bk.name,
  ...(a.backend === 'webgpu'
    ? { gpu: (bk as WebGpuBackend).describe() }
    : { cpuThreads: (bk as CpuBackend).threads, cpuKernels: a.kernels }),
  loadAverageAtEachRound: load,
  date: new Date().toISOString(),
  command: commandLine(),
};
const settings = {
  dModel: d,
  layers: a.layers,
  expand: 2,
  heads: h,
  headdim: P,
  vocab: a.vocab,
  batch: 1,
  rounds: a.rounds,
  ...(a.backend === 'webgpu' ? { seconds: a.seconds } : { steps: a.steps }),
};
console.log('wrote', writeResult(a.name, { machine, settings, results }, a.out));
bk.dispose?.();
