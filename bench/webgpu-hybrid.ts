/**
 * Batch-1 decode and prefill on WebGPU (or, with --backend cpu, the CPU) for random weights in the public shapes of the deployed models
 * (the shapes of the llama.cpp side-by-side, bench/llama-cpp-models.ts: Granite 4.0-H 350M / 1B,
 * Falcon-H1 0.5B, mamba-130m), built in memory through the real config parsers and builders, in each
 * weight format: the GPU half of issue 14's speed table.
 *   node dist/bench/webgpu-hybrid.js [--models a,b] [--dtypes f32,f16,q4] [--prompt 512] [--seconds 2] [--backend webgpu|cpu]
 *        [--layers K] [--profile N] [--out DIR]
 * --layers K keeps K of the model's layers, spread evenly over the stack (0: all); --profile N adds where
 * a decode token's time goes: host encoding, wall and GPU time per token over N tokens, and by kernel.
 * Decode: the device loop (step -> GPU greedy sampling -> next step), tokens/s after a prompt of
 * --prompt tokens; prefill: the prompt in one forward pass, tokens/s including the read-back of the
 * last logits. Writes webgpu-hybrid.json (machine, command, figures) into --out (default bench/results).
 */
import { cpus } from 'node:os';
import type { Backend } from '../src/backend/backend.js';
import { cpu } from '../src/backend/cpu/cpu-backend.js';
import { choiceList, numberList } from '../src/cli/args.js';
import { deviceTokens } from '../src/generate/device-loop.js';
import { GREEDY } from '../src/backend/sampling.js';
import { buildModel } from '../src/models/build.js';
import { buildHybrid } from '../src/models/build-hybrid.js';
import { parseConfig } from '../src/models/config.js';
import { isHybridConfig, parseHybridConfig } from '../src/models/config-hybrid.js';
import type { LanguageModel, LmConfig } from '../src/models/lm.js';
import type { WeightDType } from '../src/models/weights.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { fewerLayers, randomSource } from './bench-model-source.js';
import { BENCH_MODELS } from './llama-cpp-models.js';
import { backend, byKernel, machine, table, warmUp, writeResult } from './webgpu-common.js';
import { argvOptions } from './argv.js';

const arg = argvOptions(['models', 'dtypes', 'prompt', 'seconds', 'out', 'backend', 'layers', 'profile']);
const models = choiceList(arg('models', 'granite-4.0-h-1b,falcon-h1-0.5b'), 'models', Object.keys(BENCH_MODELS));
const dtypes = choiceList(arg('dtypes', 'f32,f16,q4'), 'dtypes', ['f32', 'f16', 'bf16', 'q4'] as const);
const [promptLen] = numberList(arg('prompt', '512'), 'prompt', { int: true, min: 1 });
const [seconds] = numberList(arg('seconds', '2'), 'seconds', { min: 0.1 });
const out = process.argv.includes('--out') ? arg('out', '') : undefined;
const where = choiceList(arg('backend', 'webgpu'), 'backend', ['webgpu', 'cpu'] as const)[0];
const [keepLayers] = numberList(arg('layers', '0'), 'layers', { int: true, min: 0 });
const [profileTokens] = numberList(arg('profile', '0'), 'profile', { int: true, min: 0 });

/**
 * Where a decode token's time goes (--profile N): N tokens one at a time (step, GPU sampling, read-back
 * awaited), the host's synchronous time per token (encoding and submitting) and the wall time per token;
 * then N tokens under timestamp queries (one compute pass per dispatch: each kernel's GPU time, without
 * the gaps between dispatches), summed per token and by kernel.
 */
async function profileDecode(
  model: LanguageModel<LmConfig>,
  prompt: Tensor,
  n: number,
): Promise<{
  hostMs: number;
  wallMs: number;
  gpuMs: number;
  dispatches: number;
  kernels: ReturnType<typeof byKernel>;
}> {
  const g = gpu!;
  const state = model.initState(1);
  const logits = model.forward(prompt, { state, lastOnly: true });
  await g.read(logits);
  const ids = g.zeros([1], 'i32');
  const counter = g.upload(Int32Array.from([0, 0]), [2], 'i32');
  const token = (): Promise<unknown> => {
    g.sample({ out: ids, logits: model.step(ids, state), params: GREEDY, step: 0, stepCounter: counter });
    return g.read(ids);
  };
  for (let i = 0; i < 2; i++) await token();
  let host = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const p = token();
    host += performance.now() - t;
    await p;
  }
  const wallMs = (performance.now() - t0) / n;
  g.startProfile();
  for (let i = 0; i < n; i++) await token();
  const prof = await g.stopProfile();
  const kernels = byKernel(prof).map((k) => ({ ...k, ms: k.ms / n, dispatches: k.dispatches / n }));
  logits.dispose();
  state.dispose();
  ids.dispose();
  counter.dispose();
  return {
    hostMs: host / n,
    wallMs,
    gpuMs: prof.reduce((a, [, ns]) => a + ns, 0) / 1e6 / n,
    dispatches: prof.length / n,
    kernels,
  };
}

const gpu = where === 'webgpu' ? await backend() : undefined;
const bk: Backend = gpu ?? cpu();
const results: Record<string, unknown>[] = [];
try {
  for (const name of models) {
    const { model: bm, picked } = fewerLayers(BENCH_MODELS[name](), keepLayers);
    for (const dtype of dtypes) {
      const t0 = performance.now();
      const model: LanguageModel<LmConfig> = isHybridConfig(bm.config)
        ? await buildHybrid(parseHybridConfig(bm.config), randomSource(bm), bk, dtype as WeightDType)
        : await buildModel(parseConfig(bm.config), randomSource(bm), bk, dtype as WeightDType);
      const loadS = (performance.now() - t0) / 1000;
      const ids = Int32Array.from({ length: promptLen }, (_, i) => 1 + ((i * 7) % (bm.vocab - 1)));
      const prompt = bk.upload(ids, [1, promptLen], 'i32');
      const prefill = async (): Promise<number> => {
        const state = model.initState(1);
        const t = performance.now();
        const logits = model.forward(prompt, { state, lastOnly: true });
        await bk.read(logits);
        const ms = performance.now() - t;
        logits.dispose();
        state.dispose();
        return (promptLen / ms) * 1000;
      };
      const decode = async (n: number): Promise<number> => {
        const state = model.initState(1);
        const logits = model.forward(prompt, { state, lastOnly: true });
        await bk.read(logits);
        let got = 0;
        const t = performance.now();
        for await (const _ of deviceTokens(model, state, logits, { maxNewTokens: n, sampling: GREEDY })) got++;
        const ms = performance.now() - t;
        logits.dispose();
        state.dispose();
        return (got / ms) * 1000;
      };
      await warmUp(1, async () => {
        await prefill();
      });
      const prefillRates = [await prefill(), await prefill(), await prefill()];
      const rate0 = await decode(32);
      const n = Math.max(64, Math.round(rate0 * seconds));
      const decodeRates = [await decode(n), await decode(n)];
      const profile = gpu && profileTokens > 0 ? await profileDecode(model, prompt, profileTokens) : undefined;
      const bytesPerWeight = dtype === 'f32' ? 4 : dtype === 'q4' ? 0.5625 : 2;
      const r = {
        model: name,
        source: bm.source,
        dtype,
        parameters: model.parameterCount(),
        weightsGB: (model.parameterCount() * bytesPerWeight) / 1e9,
        loadSeconds: loadS,
        prefillTokens: promptLen,
        prefillTokensPerSecond: Math.max(...prefillRates),
        prefillRuns: prefillRates,
        decodeTokens: n,
        decodeTokensPerSecond: Math.max(...decodeRates),
        decodeRuns: decodeRates,
        layers: picked.length,
        ...(profile ? { profile } : {}),
      };
      results.push(r);
      if (profile) {
        console.log(
          `  ${profileTokens} tokens one by one: host ${profile.hostMs.toFixed(3)} ms a token (encoding and submit), ` +
            `GPU ${profile.gpuMs.toFixed(3)} ms a token in ${profile.dispatches.toFixed(1)} dispatches (sum of kernels), ` +
            `wall ${profile.wallMs.toFixed(3)} ms a token`,
        );
        const rows: (string | number)[][] = [['kernel', 'ms a token', 'share', 'dispatches a token']];
        for (const k of profile.kernels.slice(0, 16))
          rows.push([k.kernel, k.ms.toFixed(3), `${(100 * k.share).toFixed(1)}%`, k.dispatches.toFixed(1)]);
        console.log(table(rows));
      }
      console.log(
        `${name} ${dtype}: prefill ${r.prefillTokensPerSecond.toFixed(0)} tok/s, decode ` +
          `${r.decodeTokensPerSecond.toFixed(1)} tok/s (${n} tokens after ${promptLen}); weights ${r.weightsGB.toFixed(2)} GB`,
      );
      prompt.dispose();
      for (const p of model.parameters().values()) p.dispose();
    }
  }
} finally {
  const rows: (string | number)[][] = [['model', 'weights', 'GB', 'prefill tok/s', 'decode tok/s', 'weight GB/s']];
  for (const r of results)
    rows.push([
      r.model as string,
      r.dtype as string,
      (r.weightsGB as number).toFixed(2),
      (r.prefillTokensPerSecond as number).toFixed(0),
      (r.decodeTokensPerSecond as number).toFixed(1),
      ((r.weightsGB as number) * (r.decodeTokensPerSecond as number)).toFixed(0),
    ]);
  console.log(table(rows));
  const file = writeResult(
    'webgpu-hybrid',
    {
      machine: gpu ? machine(gpu) : { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version },
      command: ['node', ...process.argv.slice(1)].join(' '),
      date: new Date().toISOString(),
      results,
    },
    out,
  );
  console.log(file);
}
