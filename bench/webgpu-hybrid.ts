/**
 * Batch-1 decode and prefill on WebGPU (or, with --backend cpu, the CPU) for random weights in the public shapes of the deployed models
 * (the shapes of the llama.cpp side-by-side, bench/llama-cpp-models.ts: Granite 4.0-H 350M / 1B,
 * Falcon-H1 0.5B, mamba-130m), built in memory through the real config parsers and builders, in each
 * weight format: the GPU half of issue 14's speed table.
 *   node dist/bench/webgpu-hybrid.js [--models a,b] [--dtypes f32,f16,q4] [--prompt 512] [--seconds 2] [--backend webgpu|cpu] [--out DIR]
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
import type { TensorEntry, TensorSource } from '../src/io/tensor-source.js';
import { buildModel } from '../src/models/build.js';
import { buildHybrid } from '../src/models/build-hybrid.js';
import { parseConfig } from '../src/models/config.js';
import { isHybridConfig, parseHybridConfig } from '../src/models/config-hybrid.js';
import type { LanguageModel, LmConfig } from '../src/models/lm.js';
import type { WeightDType } from '../src/models/weights.js';
import { BENCH_MODELS, type BenchModel } from './llama-cpp-models.js';
import { backend, machine, table, warmUp, writeResult } from './webgpu-common.js';
import { argvOptions } from './argv.js';

const arg = argvOptions(['models', 'dtypes', 'prompt', 'seconds', 'out', 'backend']);
const models = choiceList(arg('models', 'granite-4.0-h-1b,falcon-h1-0.5b'), 'models', Object.keys(BENCH_MODELS));
const dtypes = choiceList(arg('dtypes', 'f32,f16,q4'), 'dtypes', ['f32', 'f16', 'bf16', 'q4'] as const);
const [promptLen] = numberList(arg('prompt', '512'), 'prompt', { int: true, min: 1 });
const [seconds] = numberList(arg('seconds', '2'), 'seconds', { min: 0.1 });
const out = process.argv.includes('--out') ? arg('out', '') : undefined;
const where = choiceList(arg('backend', 'webgpu'), 'backend', ['webgpu', 'cpu'] as const)[0];

/** The bench model's tensors as f32, drawn from its init specs (the values do not change the timing). */
function source(m: BenchModel): TensorSource {
  const entries = new Map<string, TensorEntry>();
  for (const t of m.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    entries.set(t.hf, { name: t.hf, dtype: 'F32', shape: t.shape, byteLength: 4 * n });
  }
  const specs = new Map(m.tensors.map((t) => [t.hf, t]));
  return {
    description: `random ${m.name} weights`,
    entries,
    metadata: {},
    async read(name: string): Promise<Uint8Array> {
      const t = specs.get(name);
      if (!t) throw new Error(`no tensor ${name}`);
      const v = new Float32Array(t.shape.reduce((a, b) => a * b, 1));
      let s = name.length * 7919;
      for (let i = 0; i < v.length; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) | 0;
        const r = s / 2147483648;
        const init = t.init;
        v[i] =
          init.kind === 'uniform'
            ? r * init.scale
            : init.kind === 'around'
              ? init.center + r * init.spread
              : Math.log(1 + (i % init.period));
      }
      return new Uint8Array(v.buffer);
    },
    async close(): Promise<void> {},
  };
}

const gpu = where === 'webgpu' ? await backend() : undefined;
const bk: Backend = gpu ?? cpu();
const results: Record<string, unknown>[] = [];
try {
  for (const name of models) {
    const bm = BENCH_MODELS[name]();
    for (const dtype of dtypes) {
      const t0 = performance.now();
      const model: LanguageModel<LmConfig> = isHybridConfig(bm.config)
        ? await buildHybrid(parseHybridConfig(bm.config), source(bm), bk, dtype as WeightDType)
        : await buildModel(parseConfig(bm.config), source(bm), bk, dtype as WeightDType);
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
      };
      results.push(r);
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
