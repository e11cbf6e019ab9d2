/**
 * CPU benchmark: decode and prefill speed of Mamba-1 models of the public shapes (random weights),
 * for each weight format, kernel kind (WebAssembly SIMD or the TypeScript reference) and thread
 * count; next to llama.cpp's figures on the project's machine (a side-by-side run, see
 * llamaCppFigures) and to the memory-bandwidth limit measured here (bytes of weights streamed per
 * token / read bandwidth). MAMBA_TS_WASM_SIMD=simd128 measures the plain SIMD128 build.
 *
 *   node dist/bench/cpu.js [options], or mamba-ts bench cpu [options]
 *   (options and defaults: --help; one table in src/cli/bench-suites.ts)
 *
 * Each (model, dtype, kernels) runs in its own child process, so memory (5.6 GB for mamba-1.4b in
 * f32) is returned between configurations. Results are medians of `reps`; the machine may be busy:
 * rerun on a quiet machine for figures to quote.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs, resultFile } from '../src/cli/bench-suites.js';
import { CpuBackend, type CpuKernels } from '../src/backend/cpu/cpu-backend.js';
import type { TensorEntry, TensorSource } from '../src/io/tensor-source.js';
import { simdLevel } from '../src/backend/cpu/wasm/module.js';
import { buildMamba, expectedMambaTensors } from '../src/models/build-mamba.js';
import type { MambaConfig } from '../src/models/config.js';
import type { LanguageModel } from '../src/models/lm.js';
import type { WeightDType } from '../src/models/weights.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Public Mamba-1 shapes (REFERENCE.md section 3): d_model / layers; vocab 50280, n 16, k 4, expand 2. */
const SHAPES: Record<string, { d: number; layers: number }> = {
  '130m': { d: 768, layers: 24 },
  '370m': { d: 1024, layers: 48 },
  '1.4b': { d: 2048, layers: 48 },
};

/**
 * llama.cpp's figures to print next to ours, by "model/dtype/threads". Default: the side-by-side
 * run committed in bench/results/llama-cpp-*.json (the newest; --llama-cpp names another), taken on
 * this machine in the same hour as our figures. Without such a file: REFERENCE.md section 5 (Feb
 * 2025 build, 2 threads, when the machine's memory read 35-66 GB/s).
 */
interface LlamaCppFigures {
  source: string;
  figures: Record<string, { decode?: number; prefill?: number }>;
}

const REFERENCE_LLAMA_CPP: LlamaCppFigures = {
  source: 'REFERENCE.md section 5 (llama.cpp Feb 2025 build, 2 threads)',
  figures: {
    '130m/f32/2': { decode: 46.3, prefill: 278 },
    '130m/f16/2': { decode: 65.6, prefill: 331 },
    '1.4b/f32/2': { decode: 4.3 },
  },
};

function llamaCppFigures(file: string | undefined): LlamaCppFigures {
  const dir = join(ROOT, 'bench', 'results');
  const path =
    file ??
    readdirSync(dir)
      .filter((f) => /^llama-cpp-.*\.json$/.test(f))
      .sort()
      .map((f) => join(dir, f))
      .at(-1);
  if (!path) return REFERENCE_LLAMA_CPP;
  const j = JSON.parse(readFileSync(path, 'utf8')) as { source?: string; medians?: LlamaCppFigures['figures'] };
  if (!j.source || !j.medians)
    throw new Error(`${path}: expected { source, medians: { "130m/f32/2": { decode, prefill } } }`);
  return { source: `${j.source} (${path.slice(ROOT.length + 1)})`, figures: j.medians };
}

function config(name: string): MambaConfig {
  const s = SHAPES[name];
  if (!s) throw new Error(`unknown model ${name}; choose ${Object.keys(SHAPES).join(', ')}`);
  return {
    arch: 'mamba',
    dModel: s.d,
    nLayer: s.layers,
    vocabSize: 50280,
    dState: 16,
    dConv: 4,
    expand: 2,
    dInner: 2 * s.d,
    dtRank: Math.ceil(s.d / 16),
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

/** Random weights with Mamba's initialisation shapes (A_log = log(1..n), D = 1, small matrices). */
function syntheticSource(c: MambaConfig): TensorSource {
  const entries = new Map<string, TensorEntry>();
  for (const e of expectedMambaTensors(c)) {
    if (e.optional) continue;
    const n = e.shape.reduce((a, b) => a * b, 1);
    entries.set(e.name, { name: e.name, dtype: 'F32', shape: e.shape, byteLength: n * 4 });
  }
  let seed = 12345;
  return {
    description: `random ${c.dModel}x${c.nLayer} weights`,
    entries,
    metadata: {},
    async read(name: string): Promise<Uint8Array> {
      const e = entries.get(name)!;
      const n = e.byteLength / 4;
      const a = new Float32Array(n);
      if (name.endsWith('A_log')) for (let i = 0; i < n; i++) a[i] = Math.log(1 + (i % c.dState));
      else if (name.endsWith('.D') || name.endsWith('norm.weight') || name.endsWith('norm_f.weight')) a.fill(1);
      else if (name.endsWith('dt_proj.bias'))
        a.fill(-4.6); // softplus^-1 of 0.01
      else {
        const scale = name.includes('embeddings') ? 0.02 : 1 / Math.sqrt(e.shape[e.shape.length - 1]);
        let s = seed++;
        for (let i = 0; i < n; i++) {
          s = (Math.imul(s, 1664525) + 1013904223) | 0;
          a[i] = (s / 2147483648) * scale;
        }
      }
      return new Uint8Array(a.buffer);
    },
    async close(): Promise<void> {},
  };
}

/** Bytes of weights a decode step streams (every matrix once; vectors are negligible). */
function weightBytes(c: MambaConfig, dtype: WeightDType): number {
  const perElem = dtype === 'f32' ? 4 : dtype === 'q8' ? 1.125 : dtype === 'q4' ? 0.5625 : 2;
  let n = 0;
  for (const e of expectedMambaTensors(c)) if (e.matrix && !e.optional) n += e.shape.reduce((a, b) => a * b, 1);
  return n * perElem;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

interface RunResult {
  model: string;
  dtype: WeightDType;
  kernels: CpuKernels;
  threads: number;
  decodeTokS: number; // median
  decodeRuns: number[];
  prefillTokS: number;
  prefillRuns: number[];
  prefillTokens: number;
  weightBytes: number;
  bandwidthGBs?: number;
}

async function decodeSpeed(model: LanguageModel, steps: number): Promise<number> {
  const bk = model.backend as CpuBackend;
  const state = model.initState(1);
  const out = bk.zeros([1], 'i32').keep();
  let token = 1;
  for (let i = 0; i < 8; i++) bk.argmax(out, model.stepIds([token], state));
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    bk.argmax(out, model.stepIds([token], state));
    token = (bk.readSync(out) as Int32Array)[0]; // the next input, as generation would
  }
  const dt = (performance.now() - t0) / 1000;
  state.dispose();
  out.dispose();
  return steps / dt;
}

async function prefillSpeed(model: LanguageModel, len: number): Promise<number> {
  const bk = model.backend;
  const ids = new Int32Array(len);
  for (let i = 0; i < len; i++) ids[i] = (i * 7919) % model.vocabSize;
  const t = bk.upload(ids, [1, len], 'i32');
  const t0 = performance.now();
  const logits = model.forward(t, { lastOnly: true });
  await logits.read();
  const dt = (performance.now() - t0) / 1000;
  logits.dispose();
  t.dispose();
  return len / dt;
}

/** Child: one model, dtype and kernel kind, every thread count. Prints JSON results. */
async function child(o: {
  model: string;
  dtype: WeightDType;
  kernels: CpuKernels;
  threads: number[];
  decode: number;
  prefill: number;
  reps: number;
}): Promise<void> {
  const c = config(o.model);
  const bk = new CpuBackend({ kernels: o.kernels });
  const tb = performance.now();
  const model = await buildMamba(c, syntheticSource(c), bk, o.dtype);
  process.stderr.write(`  built ${o.model} ${o.dtype} in ${((performance.now() - tb) / 1000).toFixed(1)} s\n`);
  const results: RunResult[] = [];
  for (const threads of o.threads) {
    await bk.useThreads(threads);
    const decodeRuns: number[] = [],
      prefillRuns: number[] = [];
    for (let r = 0; r < o.reps; r++) {
      if (o.decode > 0) decodeRuns.push(await decodeSpeed(model, o.decode));
      if (o.prefill > 0) prefillRuns.push(await prefillSpeed(model, o.prefill));
      process.stderr.write(
        `  ${o.model} ${o.dtype} ${o.kernels} ${threads}t rep ${r + 1}: decode ${decodeRuns.at(-1)?.toFixed(2) ?? '-'} tok/s, prefill ${prefillRuns.at(-1)?.toFixed(1) ?? '-'} tok/s\n`,
      );
    }
    results.push({
      model: o.model,
      dtype: o.dtype,
      kernels: o.kernels,
      threads,
      decodeTokS: decodeRuns.length ? median(decodeRuns) : NaN,
      decodeRuns,
      prefillTokS: prefillRuns.length ? median(prefillRuns) : NaN,
      prefillRuns,
      prefillTokens: o.prefill,
      weightBytes: weightBytes(c, o.dtype),
    });
  }
  bk.dispose();
  process.stdout.write(JSON.stringify(results) + '\n');
}

/** Child: read bandwidth for each thread count. */
async function bandwidthChild(threads: number[]): Promise<void> {
  const out: Record<number, number> = {};
  const bk = new CpuBackend({ kernels: 'wasm' });
  for (const t of threads) {
    await bk.useThreads(t);
    out[t] = bk.measureReadBandwidth(1 << 30, 7);
  }
  bk.dispose();
  process.stdout.write(JSON.stringify(out) + '\n');
}

function runChild(args: string[]): string {
  const r = spawnSync(process.execPath, ['--max-old-space-size=8192', fileURLToPath(import.meta.url), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`benchmark child ${args.join(' ')} failed with status ${r.status}`);
  return r.stdout.trim().split('\n').at(-1)!;
}

function fmt(x: number | null | undefined, digits = 1): string {
  return x === undefined || x === null || Number.isNaN(x) ? '-' : x.toFixed(digits);
}

async function main(): Promise<void> {
  const values = benchArgs('cpu');
  const list = (s: string): string[] =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  const threads = list(values.threads!).map(Number);
  if (values.bandwidth) return bandwidthChild(list(values.bandwidth).map(Number));
  if (values.child) {
    const [model, dtype, kernels] = values.child.split('/') as [string, WeightDType, CpuKernels];
    const ts = kernels === 'ts';
    return child({
      model,
      dtype,
      kernels,
      threads,
      decode: ts ? values['decode-ts'] : values.decode,
      prefill: ts ? values['prefill-ts'] : values.prefill,
      reps: ts ? 1 : values.reps,
    });
  }
  const command = `node dist/bench/cpu.js ${process.argv.slice(2).join(' ')}`.trim();
  const llama = llamaCppFigures(values['llama-cpp']);
  const loadBefore = loadavg();
  process.stderr.write(`measuring read bandwidth (1 GiB, threads ${threads.join(', ')})\n`);
  const bandwidth = JSON.parse(runChild(['--bandwidth', threads.join(','), '--threads', threads.join(',')])) as Record<
    string,
    number
  >;
  const results: RunResult[] = [];
  for (const model of list(values.models!))
    for (const kernels of list(values.kernels!))
      for (const dtype of list(values.dtypes!)) {
        process.stderr.write(`${model} ${dtype} ${kernels}\n`);
        const args = [
          '--child',
          `${model}/${dtype}/${kernels}`,
          '--threads',
          threads.join(','),
          '--decode',
          String(values.decode),
          '--prefill',
          String(values.prefill),
          '--prefill-ts',
          String(values['prefill-ts']),
          '--decode-ts',
          String(values['decode-ts']),
          '--reps',
          String(values.reps),
        ];
        for (const r of JSON.parse(runChild(args)) as RunResult[])
          results.push({ ...r, bandwidthGBs: bandwidth[r.threads] });
      }
  const cpu0 = cpus()[0];
  const report = {
    date: new Date().toISOString(),
    command,
    machine: {
      cpu: cpu0?.model ?? 'unknown',
      cores: cpus().length,
      memoryGB: +(totalmem() / 1e9).toFixed(1),
      node: process.version,
      v8: process.versions.v8,
      platform: `${process.platform} ${process.arch}`,
    },
    // the WebAssembly build the children ran (MAMBA_TS_WASM_SIMD passes to them)
    wasmSimd: simdLevel(),
    // 1/5/15-minute load averages: above the core count, other processes shared the cores
    loadAverage: { before: loadBefore.map((x) => +x.toFixed(2)), after: loadavg().map((x) => +x.toFixed(2)) },
    readBandwidthGBs: bandwidth,
    llamaCpp: llama,
    results,
  };
  const out = resultFile('cpu', values.out);
  writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
  // the table
  const lines = [
    `| model | weights | kernels | threads | decode tok/s | limit tok/s (bandwidth) | llama.cpp decode | prefill tok/s | llama.cpp prefill |`,
    `| --- | --- | --- | --- | --- | --- | --- | --- | --- |`,
  ];
  for (const r of results) {
    // our q8 and q4 against llama.cpp's q8_0 and q4_0
    const ref =
      llama.figures[`${r.model}/${r.dtype === 'q8' || r.dtype === 'q4' ? `${r.dtype}_0` : r.dtype}/${r.threads}`];
    const limit = r.bandwidthGBs ? (r.bandwidthGBs * 1e9) / r.weightBytes : undefined;
    lines.push(
      `| ${r.model} | ${r.dtype} | ${r.kernels} | ${r.threads} | ${fmt(r.decodeTokS)} | ${fmt(limit)} (${fmt(r.bandwidthGBs)} GB/s) | ${fmt(ref?.decode)} | ${fmt(r.prefillTokS)}${r.prefillTokens !== 512 ? ` (${r.prefillTokens} tokens)` : ''} | ${fmt(ref?.prefill, 0)} |`,
    );
  }
  process.stdout.write(
    `${command}\n${report.machine.cpu}, ${report.machine.cores} cores, Node ${report.machine.node}, WebAssembly ${report.wasmSimd}; llama.cpp: ${llama.source}; read bandwidth ${Object.entries(
      bandwidth,
    )
      .map(([t, g]) => `${g.toFixed(1)} GB/s with ${t} thread(s)`)
      .join(
        ', ',
      )}; load average ${report.loadAverage.before[0]} before, ${report.loadAverage.after[0]} after\n\n${lines.join('\n')}\n\nwrote ${out}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
