/**
 * CPU side by side with llama.cpp, in one command:
 *
 *   npm run build && node dist/bench/llama-cpp-side-by-side.js [options]   (--help)
 *
 * 1. Installs llama.cpp's prebuilt CPU libraries from npm (node-llama-cpp and
 *    @node-llama-cpp/linux-x64, pinned) into a scratch directory outside this package's
 *    dependencies (--scratch, default $TMPDIR/mamba-ts-llama-cpp); nothing is built.
 * 2. Writes random weights in the public shapes (bench/llama-cpp-models.ts) twice from the same
 *    values: a Hugging Face directory (config.json + f16 safetensors) that mamba-ts loads and
 *    quantises at load time, and a GGUF per format for llama.cpp (bench/gguf-writer.ts). Written
 *    once per scratch directory.
 * 3. For every model and format, runs the two programs alternately, A B A B ... (--rounds), each run
 *    in a fresh process on the same settings: --threads threads, a prompt of --prompt random token
 *    ids, then --decode greedy tokens (decode tokens/s over the tokens after the first), then a
 *    prefill of --prefill random ids (prefill tokens/s). Both sides warm up (a short prompt and two
 *    tokens) before timing. mamba-ts's prefill runs twice and the second is the figure (llama.cpp makes
 *    its buffers for its batch size when it creates its context, before its timing); the first is kept in
 *    the JSON (prefillCold). Until e4a2a38 the first was 1.4-2.3x slower (a forward held every block's
 *    activations, so it grew and faulted in gigabytes of fresh memory); now the two agree within noise.
 * 4. Prints a table of the medians and the ratio mamba-ts / llama.cpp, and writes JSON (machine,
 *    command, versions, every round) to bench/results/cpu-vs-llama-cpp-<time>.json.
 *
 * Formats: mamba-ts's f32 / f16 / q8 / q4 against llama.cpp's F32 / F16 / Q8_0 / Q4_0. q8 and q4 are
 * mamba-ts's own formats of the same size class (q8: int8 + f32 scale per 32, 1.125 bytes a weight;
 * Q8_0: int8 + f16 scale, 1.0625; q4 and Q4_0 both 4 bits + f16 scale per 32, 0.5625), not the same
 * bytes. In both programs the matrices take the format and the vectors (norms, conv, A, D, biases)
 * stay f32; a matrix whose rows are not a multiple of 32 long (mamba-130m's dt_proj) stays F16 in
 * the quantised GGUFs.
 *
 * A CPU figure is only meaningful as a ratio measured in one run on one machine (this one's speed
 * changes from day to day and with other load): run it on a quiet machine.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { isMambaError } from '../src/errors.js';
import { loadAnyLanguageModel } from '../src/models/node/load-checkpoint.js';
import type { WeightDType } from '../src/models/weights.js';
import { f32ToF16Bits, f16ToF32Table } from '../src/tensor/dtype.js';
import { type GgmlType, type GgufTensor, type GgufValue, writeGguf } from './gguf-writer.js';
import { BENCH_MODELS, type BenchModel, type BenchTensor } from './llama-cpp-models.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The newest node-llama-cpp whose bundled llama.cpp has both granitehybrid and falcon-h1 (checked 2026-12-07). */
const NODE_LLAMA_CPP = '3.22.1';
/** Bumped when the files written for a model change, so a scratch directory is rewritten. */
const FILES_VERSION = 2;

const OPTIONS = {
  models: { type: 'string', default: 'granite-4.0-h-1b,falcon-h1-0.5b,130m' },
  dtypes: { type: 'string', default: 'f32,f16,q8,q4' },
  rounds: { type: 'string', default: '3' },
  threads: { type: 'string', default: '2' },
  prompt: { type: 'string', default: '32' },
  decode: { type: 'string', default: '64' },
  prefill: { type: 'string', default: '512' },
  scratch: { type: 'string', default: join(tmpdir(), 'mamba-ts-llama-cpp') },
  'node-llama-cpp': { type: 'string', default: NODE_LLAMA_CPP },
  out: { type: 'string' },
  child: { type: 'string' },
  dir: { type: 'string' },
  dtype: { type: 'string' },
  npm: { type: 'string' },
  gguf: { type: 'string' },
  vocab: { type: 'string' },
  help: { type: 'boolean', default: false },
} as const;

const HELP = `node dist/bench/llama-cpp-side-by-side.js [options]
  --models    ${Object.keys(BENCH_MODELS).join(', ')} (default ${OPTIONS.models.default})
  --dtypes    f32, f16, q8, q4 (llama.cpp: F32, F16, Q8_0, Q4_0) (default ${OPTIONS.dtypes.default})
  --rounds    rounds of A B per model and format (default ${OPTIONS.rounds.default})
  --threads   threads of both programs (default ${OPTIONS.threads.default})
  --prompt    prompt tokens before decoding (default ${OPTIONS.prompt.default})
  --decode    greedy tokens decoded (default ${OPTIONS.decode.default}; 0 skips decode)
  --prefill   tokens of the prefill measurement (default ${OPTIONS.prefill.default}; 0 skips it)
  --scratch   where the npm packages and the weights go (default ${OPTIONS.scratch.default})
  --node-llama-cpp  the npm version to install (default ${NODE_LLAMA_CPP})
  --out       the JSON file (default bench/results/cpu-vs-llama-cpp-<time>.json)`;

/** Greedy tokens compared between the programs. */
const KEEP_TOKENS = 8;

const GGML_OF: Record<string, GgmlType> = { f32: 'F32', f16: 'F16', q8: 'Q8_0', q4: 'Q4_0' };

interface Measure {
  /** decode tokens/s after the prompt, prefill tokens/s; undefined where not measured. */
  decode?: number;
  prefill?: number;
  /**
   * mamba-ts: the first prefill of the length, which also grows the WebAssembly memory and makes the
   * prefill's buffers (llama.cpp makes its compute buffers for a batch of that size when it creates the
   * context, before the timing); `prefill` is the second, warm one.
   */
  prefillCold?: number;
  decodeTokens?: number;
  /** The first greedy tokens after the prompt (the check that both programs run the same model). */
  tokens?: number[];
  loadS: number;
  /** Set instead of the figures when this program cannot run the model. */
  unsupported?: string;
  /** Set when the run crashed (out of memory, a signal): counted as a failure, asked again next round. */
  failed?: string;
}

interface Settings {
  threads: number;
  prompt: number;
  decode: number;
  prefill: number;
}

/** The same token ids for both programs. */
function ids(n: number, vocab: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => ((i * 7919 + salt * 104729 + 13) % (vocab - 300)) + 300);
}

// ---------------------------------------------------------------- the weights, written twice

/** FNV-1a of a string, the seed of one tensor's values. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const F16 = f16ToF32Table();

/** One tensor's values as f16 bits (the checkpoint's dtype), the same on every call. */
function values16(t: BenchTensor, model: string): Uint16Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const out = new Uint16Array(n);
  let s = hash(`${model}/${t.hf}`) | 0;
  const rand = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) | 0;
    return s / 2147483648; // [-1, 1)
  };
  const init = t.init;
  for (let i = 0; i < n; i++) {
    let v: number;
    if (init.kind === 'uniform') v = rand() * init.scale;
    else if (init.kind === 'around') v = init.center + rand() * init.spread;
    else v = Math.log(1 + (i % init.period));
    out[i] = f32ToF16Bits(v);
  }
  return out;
}

function toF32(h: Uint16Array): Float32Array {
  const x = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) x[i] = F16[h[i]];
  return x;
}

/** A safetensors file written tensor by tensor (the whole model never sits in memory). */
function writeSafetensors(path: string, m: BenchModel): void {
  let offset = 0;
  const members = m.tensors.map((t) => {
    const bytes = 2 * t.shape.reduce((a, b) => a * b, 1);
    const e = `${JSON.stringify(t.hf)}:${JSON.stringify({ dtype: 'F16', shape: t.shape, data_offsets: [offset, offset + bytes] })}`;
    offset += bytes;
    return e;
  });
  const json = new TextEncoder().encode(`{"__metadata__":{"format":"pt"},${members.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, head);
    for (const t of m.tensors) {
      const v = values16(t, m.name);
      const b = new Uint8Array(v.buffer);
      for (let done = 0; done < b.length;) done += writeSync(fd, b, done, b.length - done);
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** A small SentencePiece-style vocabulary of placeholder tokens: llama.cpp needs one; ids are given directly. */
function vocabKv(n: number): Array<[string, GgufValue]> {
  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  const types: number[] = [2, 3, 3]; // unknown, control, control
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6); // byte
  }
  for (let i = tokens.length; i < n; i++) {
    tokens.push(`\u2581t${i}`);
    types.push(1); // normal
  }
  return [
    ['tokenizer.ggml.model', { str: 'llama' }],
    ['tokenizer.ggml.tokens', { strs: tokens }],
    ['tokenizer.ggml.scores', { f32s: new Float32Array(n) }],
    ['tokenizer.ggml.token_type', { i32s: types }],
    ['tokenizer.ggml.bos_token_id', { u32: 1 }],
    ['tokenizer.ggml.eos_token_id', { u32: 2 }],
    ['tokenizer.ggml.add_bos_token', { bool: false }],
  ];
}

function writeModelGguf(path: string, m: BenchModel, dtype: string): void {
  const want = GGML_OF[dtype];
  const tensors: GgufTensor[] = [];
  for (const t of m.tensors)
    for (const part of t.gguf) {
      let type: GgmlType = part.keepF32 || part.shape.length < 2 ? 'F32' : want;
      // block formats need rows of whole blocks; llama.cpp's quantiser also falls back for such rows
      if ((type === 'Q8_0' || type === 'Q4_0') && part.shape[part.shape.length - 1] % 32) type = 'F16';
      tensors.push({
        name: part.name,
        shape: part.shape,
        type,
        data: () => {
          let h = values16(t, m.name);
          if (part.range) h = h.subarray(part.range[0], part.range[1]);
          return part.negExp ? toF32(h).map((v) => -Math.exp(v)) : h;
        },
      });
    }
  const ftype = { f32: 0, f16: 1, q4: 2, q8: 7 }[dtype] ?? 0; // llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_Q4_0, MOSTLY_Q8_0
  writeGguf(
    path,
    [
      ['general.architecture', { str: m.ggufArch }],
      ['general.name', { str: `random ${m.name}` }],
      ['general.file_type', { u32: ftype }],
      ...m.ggufKv,
      [`${m.ggufArch}.vocab_size`, { u32: m.vocab }],
      ...vocabKv(m.vocab),
    ],
    tensors,
  );
}

/** The model's files in the scratch directory, written where missing. */
function prepareModel(scratch: string, m: BenchModel, dtypes: string[]): { hf: string; gguf: Record<string, string> } {
  const dir = join(scratch, 'models', `${m.name}-v${FILES_VERSION}`);
  const hf = join(dir, 'hf');
  mkdirSync(hf, { recursive: true });
  if (!existsSync(join(hf, 'model.safetensors'))) {
    process.stderr.write(`writing ${m.name} safetensors (f16) ...\n`);
    writeFileSync(join(hf, 'config.json'), `${JSON.stringify(m.config, null, 2)}\n`);
    writeSafetensors(join(hf, 'model.safetensors'), m);
  }
  const gguf: Record<string, string> = {};
  for (const d of dtypes) {
    gguf[d] = join(dir, `${m.name}-${GGML_OF[d]}.gguf`);
    if (!existsSync(gguf[d])) {
      process.stderr.write(`writing ${m.name} GGUF (${GGML_OF[d]}) ...\n`);
      writeModelGguf(gguf[d], m, d);
    }
  }
  return { hf, gguf };
}

// ---------------------------------------------------------------- llama.cpp from npm

interface LlamaCppInstall {
  dir: string;
  version: string;
  llamaCpp: string;
}

function installLlamaCpp(scratch: string, version: string): LlamaCppInstall {
  const dir = join(scratch, `npm-node-llama-cpp-${version}`);
  const pkg = join(dir, 'node_modules', 'node-llama-cpp', 'package.json');
  if (!existsSync(pkg)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{ "private": true }\n');
    process.stderr.write(
      `installing node-llama-cpp@${version} and @node-llama-cpp/linux-x64@${version} into ${dir} ...\n`,
    );
    // --ignore-scripts: the prebuilt binaries are used as they come (no download, no build);
    // --omit=optional: no GPU builds, only the CPU package named here
    execFileSync(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        '--omit=optional',
        '--no-package-lock',
        `node-llama-cpp@${version}`,
        `@node-llama-cpp/linux-x64@${version}`,
      ],
      { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] },
    );
  }
  const got = JSON.parse(readFileSync(pkg, 'utf8')) as { version: string };
  if (got.version !== version) throw new Error(`${pkg}: version ${got.version}, expected ${version}`);
  let llamaCpp = 'unknown';
  try {
    const info = JSON.parse(
      readFileSync(join(dir, 'node_modules', 'node-llama-cpp', 'llama', 'llama.cpp.info.json'), 'utf8'),
    ) as {
      tag: string;
      llamaCppGithubRepo: string;
    };
    llamaCpp = `${info.llamaCppGithubRepo} release ${info.tag}`;
    const heads = execFileSync(
      'git',
      ['bundle', 'list-heads', join(dir, 'node_modules', 'node-llama-cpp', 'llama', 'gitRelease.bundle')],
      {
        encoding: 'utf8',
      },
    );
    llamaCpp += `, commit ${heads.split(' ')[0]}`;
  } catch {
    // git missing or no bundle: the release tag alone
  }
  return { dir, version, llamaCpp };
}

// ---------------------------------------------------------------- the two children

/** mamba-ts: loads the Hugging Face directory in the format, measures decode and prefill. */
async function mambaChild(dir: string, dtype: WeightDType, s: Settings): Promise<Measure> {
  const bk = new CpuBackend({ kernels: 'wasm' });
  await bk.useThreads(s.threads);
  const t0 = performance.now();
  let model;
  try {
    model = await loadAnyLanguageModel(dir, { backend: bk, dtype });
  } catch (e) {
    bk.dispose();
    if (isMambaError(e)) return { loadS: 0, unsupported: `mamba-ts: error[${e.code}]: ${e.message}` };
    throw e;
  }
  const loadS = (performance.now() - t0) / 1000;
  const V = model.vocabSize;
  const out = bk.zeros([1], 'i32').keep();
  const run = (prompt: number[], steps: number): { rate: number; tokens: number[] } => {
    const state = model.initState(1);
    const t = bk.upload(Int32Array.from(prompt), [1, prompt.length], 'i32');
    bk.argmax(out, model.forward(t, { state, lastOnly: true }));
    t.dispose();
    let token = (bk.readSync(out) as Int32Array)[0];
    const tokens = [token];
    const tStart = performance.now();
    for (let i = 0; i < steps; i++) {
      bk.argmax(out, model.stepIds([token], state));
      token = (bk.readSync(out) as Int32Array)[0];
      if (tokens.length < KEEP_TOKENS) tokens.push(token);
    }
    const dt = (performance.now() - tStart) / 1000;
    state.dispose();
    return { rate: steps / dt, tokens };
  };
  run(ids(8, V, 1), 2); // warm-up: kernels compiled, threads started, pages touched
  const m: Measure = { loadS };
  if (s.decode > 0) {
    const r = run(ids(s.prompt, V, 2), s.decode);
    m.decode = r.rate;
    m.decodeTokens = s.decode;
    m.tokens = r.tokens;
  }
  if (s.prefill > 0) {
    const t = bk.upload(Int32Array.from(ids(s.prefill, V, 3)), [1, s.prefill], 'i32');
    const rates: number[] = [];
    for (let i = 0; i < 2; i++) {
      const tp = performance.now();
      const logits = model.forward(t, { lastOnly: true });
      await logits.read();
      rates.push(s.prefill / ((performance.now() - tp) / 1000));
      logits.dispose();
    }
    [m.prefillCold, m.prefill] = rates;
    t.dispose();
  }
  out.dispose();
  bk.dispose();
  return m;
}

/** The parts of node-llama-cpp's API used here (it is installed outside this package, so untyped). */
interface NlcSequence {
  evaluate(tokens: number[], o: { temperature: number }): AsyncGenerator<number, void, void>;
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  clearHistory(): Promise<void>;
}
interface Nlc {
  getLlama(o: Record<string, unknown>): Promise<{
    loadModel(o: Record<string, unknown>): Promise<{
      createContext(o: Record<string, unknown>): Promise<{ getSequence(): NlcSequence; dispose(): Promise<void> }>;
      dispose(): Promise<void>;
    }>;
    dispose(): Promise<void>;
    systemInfo?: string;
  }>;
  LlamaLogLevel: Record<string, unknown>;
}

/** llama.cpp through node-llama-cpp: the same measurements on the GGUF. */
async function llamaChild(npmDir: string, gguf: string, vocab: number, s: Settings): Promise<Measure> {
  const nlc = (await import(
    pathToFileURL(join(npmDir, 'node_modules', 'node-llama-cpp', 'dist', 'index.js')).href
  )) as Nlc;
  const llama = await nlc.getLlama({
    gpu: false,
    build: 'never',
    skipDownload: true,
    progressLogs: false,
    logLevel: nlc.LlamaLogLevel.error,
    maxThreads: s.threads,
  });
  const t0 = performance.now();
  let model;
  try {
    model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  } catch (e) {
    await llama.dispose();
    return { loadS: 0, unsupported: `llama.cpp: ${(e as Error).message}` };
  }
  const loadS = (performance.now() - t0) / 1000;
  const contextSize = Math.max(s.prefill, s.prompt + s.decode) + 16; // room beyond the longest sequence
  const ctx = await model.createContext({
    contextSize,
    batchSize: Math.max(s.prefill, s.prompt, 8),
    threads: { ideal: s.threads, min: s.threads },
    sequences: 1,
  });
  const seq = ctx.getSequence();
  const run = async (prompt: number[], steps: number): Promise<{ rate: number; n: number; tokens: number[] }> => {
    await seq.clearHistory();
    let n = 0;
    let tStart = 0;
    const tokens: number[] = [];
    // the first token comes with the prompt's evaluation; the clock starts after it, as in mamba-ts
    for await (const token of seq.evaluate(prompt, { temperature: 0 })) {
      if (n === 0) tStart = performance.now();
      if (tokens.length < KEEP_TOKENS) tokens.push(token);
      if (n++ === steps) break;
    }
    return { rate: (n - 1) / ((performance.now() - tStart) / 1000), n: n - 1, tokens };
  };
  await run(ids(8, vocab, 1), 2);
  const m: Measure = { loadS };
  if (s.decode > 0) {
    const r = await run(ids(s.prompt, vocab, 2), s.decode);
    m.decode = r.rate;
    m.decodeTokens = r.n;
    m.tokens = r.tokens;
  }
  if (s.prefill > 0) {
    await seq.clearHistory();
    const tp = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(ids(s.prefill, vocab, 3));
    m.prefill = s.prefill / ((performance.now() - tp) / 1000);
  }
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  return m;
}

// ---------------------------------------------------------------- the parent

function runChild(args: string[]): Measure {
  const r = spawnSync(process.execPath, ['--max-old-space-size=8192', fileURLToPath(import.meta.url), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  });
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.status !== 0 || !last.startsWith('{'))
    return {
      loadS: 0,
      failed: `child ${args.slice(0, 2).join(' ')} exited with status ${r.status}${r.signal ? ` (${r.signal})` : ''}`,
    };
  return JSON.parse(last) as Measure;
}

function median(xs: number[]): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function fmt(x: number | undefined, digits = 1): string {
  return x === undefined ? '-' : x.toFixed(digits);
}

interface Row {
  model: string;
  dtype: string;
  llamaCppType: string;
  rounds: Array<{ mambaTs: Measure; llamaCpp: Measure }>;
  mambaTs: Summary;
  llamaCpp: Summary;
  decodeRatio?: number;
  prefillRatio?: number;
  /** How many of the first greedy tokens agree (round 1), of how many compared. */
  sameTokens?: string;
}

interface Summary {
  decode?: number;
  prefill?: number;
  prefillCold?: number;
  unsupported?: string;
  /** Runs that crashed, with the first one's message. */
  failed?: string;
}

function summarise(ms: Measure[]): Summary {
  const bad = ms.find((m) => m.unsupported);
  if (bad?.unsupported) return { unsupported: bad.unsupported };
  const crashed = ms.filter((m) => m.failed);
  const out: Summary = crashed.length ? { failed: `${crashed.length} of ${ms.length} runs: ${crashed[0].failed}` } : {};
  const d = median(ms.flatMap((m) => (m.decode === undefined ? [] : [m.decode])));
  const p = median(ms.flatMap((m) => (m.prefill === undefined ? [] : [m.prefill])));
  if (d !== undefined) out.decode = d;
  if (p !== undefined) out.prefill = p;
  const pc = median(ms.flatMap((m) => (m.prefillCold === undefined ? [] : [m.prefillCold])));
  if (pc !== undefined) out.prefillCold = pc;
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: OPTIONS, allowPositionals: false });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const int = (k: 'rounds' | 'threads' | 'prompt' | 'decode' | 'prefill', min: number): number => {
    const v = Number(values[k]);
    if (!Number.isInteger(v) || v < min) throw new Error(`--${k} must be an integer >= ${min}, got ${values[k]}`);
    return v;
  };
  const s: Settings = {
    threads: int('threads', 1),
    prompt: int('prompt', 1),
    decode: int('decode', 0),
    prefill: int('prefill', 0),
  };
  if (values.child === 'mamba-ts') {
    process.stdout.write(`${JSON.stringify(await mambaChild(values.dir!, values.dtype as WeightDType, s))}\n`);
    return;
  }
  if (values.child === 'llama-cpp') {
    process.stdout.write(`${JSON.stringify(await llamaChild(values.npm!, values.gguf!, Number(values.vocab), s))}\n`);
    return;
  }
  const list = (x: string): string[] =>
    x
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean);
  const models = list(values.models);
  const dtypes = list(values.dtypes);
  for (const m of models)
    if (!BENCH_MODELS[m]) throw new Error(`unknown model ${m}; choose ${Object.keys(BENCH_MODELS).join(', ')}`);
  for (const d of dtypes) if (!GGML_OF[d]) throw new Error(`unknown format ${d}; choose f32, f16, q8, q4`);
  const rounds = int('rounds', 1);
  const command = `node dist/bench/llama-cpp-side-by-side.js ${process.argv.slice(2).join(' ')}`.trim();
  const started = new Date();
  const loadBefore = loadavg();
  mkdirSync(values.scratch, { recursive: true });
  const install = installLlamaCpp(values.scratch, values['node-llama-cpp']);
  const settingArgs = [
    '--threads',
    `${s.threads}`,
    '--prompt',
    `${s.prompt}`,
    '--decode',
    `${s.decode}`,
    '--prefill',
    `${s.prefill}`,
  ];
  const rows: Row[] = [];
  for (const name of models) {
    const m = BENCH_MODELS[name]();
    const files = prepareModel(values.scratch, m, dtypes);
    for (const dtype of dtypes) {
      const row: Row = { model: name, dtype, llamaCppType: GGML_OF[dtype], rounds: [], mambaTs: {}, llamaCpp: {} };
      // a program that cannot run the model (error, not a crash of the run) is not asked again
      let a: Measure | undefined, b: Measure | undefined;
      for (let r = 0; r < rounds; r++) {
        if (!a?.unsupported) a = runChild(['--child', 'mamba-ts', '--dir', files.hf, '--dtype', dtype, ...settingArgs]);
        if (!b?.unsupported)
          b = runChild([
            '--child',
            'llama-cpp',
            '--npm',
            install.dir,
            '--gguf',
            files.gguf[dtype],
            '--vocab',
            `${m.vocab}`,
            ...settingArgs,
          ]);
        row.rounds.push({ mambaTs: a, llamaCpp: b });
        const show = (x: Measure): string =>
          x.unsupported ??
          x.failed ??
          `decode ${fmt(x.decode, 2)} tok/s, prefill ${fmt(x.prefill)} tok/s${x.prefillCold ? ` (first ${fmt(x.prefillCold)})` : ''}`;
        process.stderr.write(`  ${name} ${dtype} round ${r + 1}: mamba-ts ${show(a)} | llama.cpp ${show(b)}\n`);
        if (a.unsupported && b.unsupported) break;
      }
      row.mambaTs = summarise(row.rounds.map((x) => x.mambaTs));
      row.llamaCpp = summarise(row.rounds.map((x) => x.llamaCpp));
      const ta = row.rounds[0]?.mambaTs.tokens,
        tb = row.rounds[0]?.llamaCpp.tokens;
      if (ta && tb) {
        const n = Math.min(ta.length, tb.length);
        let same = 0;
        while (same < n && ta[same] === tb[same]) same++;
        row.sameTokens = `${same}/${n}`;
      }
      if (row.mambaTs.decode && row.llamaCpp.decode) row.decodeRatio = row.mambaTs.decode / row.llamaCpp.decode;
      if (row.mambaTs.prefill && row.llamaCpp.prefill) row.prefillRatio = row.mambaTs.prefill / row.llamaCpp.prefill;
      rows.push(row);
    }
  }
  const loadAfter = loadavg();
  const report = {
    command,
    date: started.toISOString(),
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      loadAvgBefore: loadBefore,
      loadAvgAfter: loadAfter,
    },
    versions: {
      mambaTs: (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
      mambaTsCommit: gitHead(),
      nodeLlamaCpp: install.version,
      llamaCpp: install.llamaCpp,
    },
    settings: {
      ...s,
      rounds,
      order: 'per model and format: mamba-ts, llama.cpp, mamba-ts, llama.cpp, ... (each a fresh process)',
    },
    formats:
      'mamba-ts f32/f16/q8/q4 vs llama.cpp F32/F16/Q8_0/Q4_0: q8 and q4 are mamba-ts formats of similar size, not the same bytes',
    models: Object.fromEntries(models.map((n) => [n, BENCH_MODELS[n]().source])),
    rows,
  };
  const out =
    values.out ??
    join(ROOT, 'bench', 'results', `cpu-vs-llama-cpp-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, `${JSON.stringify(report, null, 1)}\n`);
  const lines = [
    `${command}`,
    `${report.machine.cpu}, ${report.machine.cores} cores, Node ${process.version}; llama.cpp: node-llama-cpp ${install.version} (${install.llamaCpp}); ${s.threads} threads, prompt ${s.prompt}, decode ${s.decode}, prefill ${s.prefill}, ${rounds} rounds; load average ${loadBefore[0].toFixed(2)} -> ${loadAfter[0].toFixed(2)}`,
    '',
    '| model | weights (mamba-ts / llama.cpp) | decode tok/s: mamba-ts / llama.cpp | ratio | prefill tok/s: mamba-ts / llama.cpp | ratio | same greedy tokens |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => {
      const side = (x: Row['mambaTs'], k: 'decode' | 'prefill'): string =>
        x.unsupported ? 'n/a' : x.failed && x[k] === undefined ? 'failed' : fmt(x[k], k === 'decode' ? 2 : 1);
      return `| ${r.model} | ${r.dtype} / ${r.llamaCppType} | ${side(r.mambaTs, 'decode')} / ${side(r.llamaCpp, 'decode')} | ${fmt(r.decodeRatio, 2)} | ${side(r.mambaTs, 'prefill')} / ${side(r.llamaCpp, 'prefill')} | ${fmt(r.prefillRatio, 2)} | ${r.sameTokens ?? '-'} |`;
    }),
  ];
  const notes = rows.flatMap((r) => [
    ...[r.mambaTs.unsupported, r.llamaCpp.unsupported]
      .filter((x) => x)
      .map((x) => `- ${r.model} ${r.dtype}: not supported by this build: ${x}`),
    ...[r.mambaTs.failed, r.llamaCpp.failed].filter((x) => x).map((x) => `- ${r.model} ${r.dtype}: failed: ${x}`),
  ]);
  process.stdout.write(`${[...lines, ...(notes.length ? ['', ...new Set(notes)] : [])].join('\n')}\n\nwrote ${out}\n`);
}

function gitHead(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

await main();
