import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMambaError } from '../errors.js';
import { DEFAULT_SETTINGS as TRAIN_DEFAULTS } from '../train/settings.js';
import { HELP_OPTION, helpText, parse, type CommandSpec, type OptionTable, type Values } from './args.js';

/**
 * The benchmark programs of bench/ and their options: one table per suite, read by `mamba-ts bench
 * <suite>` (help and strict checks before anything runs) and by the program itself (`benchArgs`), so
 * a default is written once. Results go to a new timestamped file in bench/results/ (or --out): a run
 * never replaces a committed result.
 */
const spec = <T extends OptionTable>(name: string, summary: string, usage: string, options: T, footer?: string) =>
  ({
    name: `bench ${name}`,
    summary,
    usage: [usage],
    options: { ...options, ...HELP_OPTION },
    ...(footer ? { footer } : {}),
  }) as const;

const outFile = (suite: string) =>
  ({
    type: 'string',
    arg: '<file>',
    nonEmpty: true,
    defaultText: `a new bench/results/${suite}-<date>.json`,
    help: 'JSON output',
  }) as const;
const OUT_DIR = {
  type: 'string',
  arg: '<dir>',
  nonEmpty: true,
  defaultText: 'a new bench/results/<name>-<date>.json',
  help: 'write <name>.json into this directory (e.g. a fresh folder for webgpu-report --dir)',
} as const;

export const BENCH_SUITES = {
  cpu: spec(
    'cpu',
    'decode and prefill tokens/s on the CPU: mamba-130m / 1.4b shapes, f32/f16/bf16/q8/q4, WebAssembly vs ' +
      'TypeScript kernels, 1 and 2 threads, next to llama.cpp',
    'mamba-ts bench cpu [options]',
    {
      models: { type: 'string', arg: '<list>', default: '130m', help: 'model shapes, e.g. 130m,1.4b' },
      dtypes: { type: 'string', arg: '<list>', default: 'f32,f16,bf16,q8,q4', help: 'weight formats' },
      kernels: { type: 'string', arg: '<list>', default: 'wasm,ts', help: 'kernel kinds' },
      threads: { type: 'string', arg: '<list>', default: '1,2', help: 'thread counts' },
      decode: { type: 'int', min: 1, default: 64, help: 'timed decode steps (after 8 warm-up steps)' },
      prefill: { type: 'int', min: 1, default: 512, help: 'prompt length' },
      'prefill-ts': { type: 'int', min: 1, default: 64, help: 'prompt length with the TypeScript kernels' },
      'decode-ts': { type: 'int', min: 1, default: 16, help: 'timed decode steps with the TypeScript kernels' },
      reps: { type: 'int', min: 1, default: 3, help: 'repetitions; the median is reported' },
      out: outFile('cpu'),
      'llama-cpp': {
        type: 'string',
        arg: '<file>',
        defaultText: 'the newest bench/results/llama-cpp-*.json',
        help: 'llama.cpp figures',
      },
      child: { type: 'string', hidden: true, help: 'internal: one configuration in a child process' },
      bandwidth: { type: 'string', hidden: true, help: 'internal: measure read bandwidth in a child process' },
    },
  ),
  'webgpu-decode': spec(
    'webgpu-decode',
    'batch-1 decode tokens/s through WebGPU (mamba-130m / 1.4b shapes, f32 and 16-bit weights)',
    'mamba-ts bench webgpu-decode [options]',
    {
      models: { type: 'string', arg: '<list>', default: '130m,1.4b', help: 'model shapes (130m, 370m, 1.4b, tiny)' },
      dtypes: { type: 'string', arg: '<list>', default: 'f32,bf16', help: 'weight formats (f32, f16, bf16)' },
      seconds: { type: 'number', min: 0, minExclusive: true, default: 3, help: 'timed seconds per configuration' },
      warmup: { type: 'number', min: 0, default: 1, help: 'warm-up seconds' },
      lookahead: { type: 'int', min: 1, default: 2, help: 'tokens queued ahead on the GPU' },
      vocab: { type: 'int', min: 1, default: 50280, help: 'vocabulary rows' },
      'fuse-norm': {
        type: 'string',
        arg: '<on|off|on,off>',
        default: 'on',
        help: 'fuse RMSNorm and the residual add into the step',
      },
      name: { type: 'string', nonEmpty: true, default: 'webgpu-decode', help: 'result file name' },
      out: OUT_DIR,
    },
  ),
  'webgpu-prefill': spec(
    'webgpu-prefill',
    'prefill tokens/s through WebGPU at 2048 tokens, with the share of time in each kernel',
    'mamba-ts bench webgpu-prefill [options]',
    {
      models: { type: 'string', arg: '<list>', default: '130m,1.4b', help: 'model shapes (130m, 370m, 1.4b, tiny)' },
      dtypes: { type: 'string', arg: '<list>', default: 'f32', help: 'weight formats (f32, f16, bf16)' },
      tokens: { type: 'int', min: 1, default: 2048, help: 'prompt length' },
      reps: { type: 'int', min: 1, default: 5, help: 'repetitions' },
      vocab: { type: 'int', min: 1, default: 50280, help: 'vocabulary rows' },
      name: { type: 'string', nonEmpty: true, default: 'webgpu-prefill', help: 'result file name' },
      out: OUT_DIR,
    },
  ),
  'webgpu-scan': spec(
    'webgpu-scan',
    'the fused selective scan through WebGPU on the three standard shapes (ms, GB/s)',
    'mamba-ts bench webgpu-scan [options]',
    {
      shapes: {
        type: 'string',
        arg: '<bxexlxn,...>',
        default: '1x1536x2048x16,4x2048x4096x16,8x5120x2048x16',
        help: 'scan shapes',
      },
      threads: { type: 'string', arg: '<list>', default: '0', help: 'threads (chunking; 0: the default)' },
      wg: { type: 'string', arg: '<list>', default: '64', help: 'workgroup sizes' },
      reps: { type: 'int', min: 1, default: 20, help: 'repetitions' },
      name: { type: 'string', nonEmpty: true, default: 'webgpu-scan', help: 'result file name' },
      out: OUT_DIR,
    },
  ),
  'webgpu-scan-backward': spec(
    'webgpu-scan-backward',
    'the selective scan forward and backward through WebGPU on the three standard shapes (ms, vs the official fwd+bwd)',
    'mamba-ts bench webgpu-scan-backward [options]',
    {
      shapes: {
        type: 'string',
        arg: '<bxexlxn,...>',
        default: '1x1536x2048x16,4x2048x4096x16,8x5120x2048x16',
        help: 'scan shapes',
      },
      chunk: { type: 'int', min: 1, default: 16, help: "the backward's chunk length (at most 32)" },
      reps: { type: 'int', min: 1, default: 10, help: 'repetitions' },
      name: { type: 'string', nonEmpty: true, default: 'webgpu-scan-backward', help: 'result file name' },
      out: OUT_DIR,
    },
  ),
  'webgpu-ssd': spec('webgpu-ssd', 'the Mamba-2 SSD scan through WebGPU', 'mamba-ts bench webgpu-ssd [options]', {
    shapes: {
      type: 'string',
      arg: '<bxlxhxpxnxg,...>',
      default: '4x4096x64x64x128x1,1x1x64x64x128x1',
      help: 'scan shapes',
    },
    chunks: { type: 'string', arg: '<list>', default: '256,128,64', help: 'chunk lengths' },
    paths: { type: 'string', arg: '<list>', default: 'chunked', help: 'kernel paths' },
    reps: { type: 'int', min: 1, default: 10, help: 'repetitions' },
    name: { type: 'string', nonEmpty: true, default: 'webgpu-ssd', help: 'result file name' },
    out: OUT_DIR,
  }),
  ssd: spec(
    'ssd',
    'Mamba-2 SSD chunked scan vs the Mamba-1 selective scan on the CPU',
    'mamba-ts bench ssd [options]',
    {
      d: { type: 'int', min: 1, default: 768, help: 'd_model' },
      lengths: { type: 'string', arg: '<list>', default: '512,1024,2048', help: 'sequence lengths' },
      batch: { type: 'int', min: 1, default: 1, help: 'batch' },
      chunks: { type: 'string', arg: '<list>', default: '256,64', help: 'SSD chunk lengths' },
      repeats: { type: 'int', min: 1, default: 3, help: 'repetitions' },
      steps: { type: 'int', min: 0, default: 64, help: 'timed decode steps (0: none)' },
      official: { type: 'boolean', help: 'also time the shape of the official Triton SSD figure (slow on a CPU)' },
      out: outFile('ssd'),
    },
  ),
  train: spec(
    'train',
    'training tokens/s, peak memory and seconds per kernel of full training steps (forward, backward, AdamW)',
    'mamba-ts bench train [options]',
    {
      steps: { type: 'int', min: 1, default: 3, help: 'timed steps' },
      // The shape of the default training settings.
      'd-model': { type: 'int', min: 1, default: TRAIN_DEFAULTS.model.dModel, help: 'd_model' },
      layers: { type: 'int', min: 1, default: TRAIN_DEFAULTS.model.nLayer, help: 'layers' },
      'seq-len': { type: 'int', min: 1, default: TRAIN_DEFAULTS.train.seqLen, help: 'sequence length' },
      batch: { type: 'int', min: 1, default: TRAIN_DEFAULTS.train.batchSize, help: 'batch' },
      vocab: { type: 'int', min: 2, default: TRAIN_DEFAULTS.tokenizer.vocabSize, help: 'vocabulary' },
      backend: { type: 'enum', values: ['cpu', 'webgpu'], default: 'cpu', help: 'where to compute' },
      threads: { type: 'string', arg: '<list>', default: '1,2', help: 'CPU thread counts' },
      kernels: { type: 'enum', values: ['wasm', 'ts'], default: 'wasm', help: 'CPU kernel kind' },
      out: outFile('train'),
      child: { type: 'boolean', hidden: true, help: 'internal: one configuration in a child process' },
    },
  ),
  'scan-memory': spec(
    'scan-memory',
    'peak memory of the selective scan backward: chunked recomputation vs storing every state',
    'mamba-ts bench scan-memory [options]',
    {
      lengths: { type: 'string', arg: '<list>', default: '256,1024,4096', help: 'sequence lengths' },
      batch: { type: 'int', min: 1, default: 2, help: 'batch' },
      'd-inner': { type: 'int', min: 1, default: 512, help: 'channels' },
      'd-state': { type: 'int', min: 1, default: 16, help: 'state size' },
      out: outFile('scan-memory'),
    },
  ),
  'mamba3-decode': spec(
    'mamba3-decode',
    'batch-1 decode tokens/s and state bytes per layer: Mamba-3 SISO and MIMO against Mamba-2 at the same width',
    'mamba-ts bench mamba3-decode [options]',
    {
      backend: { type: 'enum', values: ['cpu', 'webgpu'], default: 'cpu', help: 'where to compute' },
      kernels: {
        type: 'enum',
        values: ['wasm', 'ts'],
        default: 'wasm',
        help: 'CPU kernel kind (wasm: WebAssembly where it exists, both scans included; ts: the references)',
      },
      variants: {
        type: 'string',
        arg: '<list>',
        default: 'mamba2-128,mamba3-128,mamba3-64,mimo4-128,mimo4-64',
        help: 'layers: mamba2-<d_state>, mamba3-<d_state> (SISO), mimo<rank>-<d_state>',
      },
      'd-model': { type: 'int', min: 1, default: 768, help: 'd_model (mamba2-130m: 768)' },
      layers: { type: 'int', min: 1, default: 24, help: 'layers' },
      headdim: { type: 'int', min: 1, default: 64, help: 'head width p (expand 2: heads = 2·d_model / p)' },
      vocab: { type: 'int', min: 2, default: 50280, help: 'vocabulary rows' },
      steps: { type: 'int', min: 1, default: 32, help: 'CPU: timed decode steps per variant and round' },
      seconds: { type: 'number', min: 0, minExclusive: true, default: 2, help: 'WebGPU: timed seconds per run' },
      rounds: { type: 'int', min: 1, default: 3, help: 'rounds; each times every variant once, in turn' },
      name: { type: 'string', nonEmpty: true, default: 'mamba3-decode', help: 'result file name' },
      out: OUT_DIR,
    },
  ),
  'mamba3-train': spec(
    'mamba3-train',
    'training step time: Mamba-3 SISO and MIMO against Mamba-2 at the same width (forward, backward, AdamW)',
    'mamba-ts bench mamba3-train [options]',
    {
      backend: { type: 'enum', values: ['cpu', 'webgpu'], default: 'cpu', help: 'where to compute' },
      kernels: { type: 'enum', values: ['wasm', 'ts'], default: 'wasm', help: 'CPU kernel kind' },
      variants: {
        type: 'string',
        arg: '<list>',
        default: 'mamba2-128,mamba3-128,mamba3-64,mimo4-64',
        help: 'layers: mamba2-<d_state>, mamba3-<d_state> (SISO), mimo<rank>-<d_state>',
      },
      'd-model': { type: 'int', min: 1, default: 768, help: 'd_model (mamba2-130m: 768)' },
      layers: { type: 'int', min: 1, default: 4, help: 'layers' },
      headdim: { type: 'int', min: 1, default: 64, help: 'head width p (expand 2: heads = 2·d_model / p)' },
      vocab: { type: 'int', min: 2, default: 4096, help: 'vocabulary rows (the default training settings: 4096)' },
      batch: { type: 'int', min: 1, default: 8, help: 'sequences per step' },
      'seq-len': { type: 'int', min: 1, default: 512, help: 'tokens per sequence' },
      steps: { type: 'int', min: 1, default: 3, help: 'timed steps per variant and round' },
      rounds: { type: 'int', min: 1, default: 3, help: 'rounds; each times every variant once, in turn' },
      'ssd-paths': {
        type: 'string',
        arg: '<list>',
        default: 'auto',
        help: 'webgpu: scan paths (auto, sequential, chunked), each variant timed on each (rows variant@path)',
      },
      name: { type: 'string', nonEmpty: true, default: 'mamba3-train', help: 'result file name' },
      out: OUT_DIR,
    },
  ),
  'context-cost': spec(
    'context-cost',
    'cost per token against context, Mamba vs attention (decode and training)',
    'mamba-ts bench context-cost [options]',
    {
      'd-model': { type: 'int', min: 1, default: 256, help: 'd_model' },
      layers: { type: 'int', min: 1, default: 4, help: 'Mamba layers (attention gets 1.5x)' },
      heads: { type: 'int', min: 1, default: 4, help: 'attention heads' },
      vocab: { type: 'int', min: 2, default: 256, help: 'vocabulary' },
      contexts: {
        type: 'string',
        arg: '<list>',
        default: '1,16,256,1024,4096,16384,65536,131072',
        help: 'context lengths',
      },
      'train-lengths': { type: 'string', arg: '<list>', default: '256,1024', help: 'training sequence lengths' },
      'train-batch': { type: 'int', min: 1, default: 1, help: 'training batch' },
      steps: { type: 'int', min: 1, default: 16, help: 'timed steps' },
      out: outFile('context-cost'),
      svg: { type: 'string', arg: '<file>', nonEmpty: true, defaultText: 'beside the JSON, .svg', help: 'the plot' },
      from: {
        type: 'string',
        arg: '<json>',
        help: "only redraw the plot and the markdown tables from an earlier run's JSON",
      },
    },
  ),
  'hybrid-context-cost': spec(
    'hybrid-context-cost',
    'cost per token against context: a Mamba-2 + attention hybrid vs pure Mamba-2 vs pure attention (decode)',
    'mamba-ts bench hybrid-context-cost [options]',
    {
      'd-model': { type: 'int', min: 64, default: 256, help: 'd_model (a multiple of 64)' },
      layers: { type: 'int', min: 1, default: 10, help: 'layers' },
      'attention-every': { type: 'int', min: 1, default: 10, help: 'the hybrid has one attention layer in this many' },
      'kv-heads': { type: 'int', min: 1, default: 1, help: 'attention KV heads (of 64 wide)' },
      'd-state': { type: 'int', min: 1, default: 128, help: 'Mamba-2 d_state' },
      vocab: { type: 'int', min: 2, default: 256, help: 'vocabulary' },
      contexts: {
        type: 'string',
        arg: '<list>',
        default: '1,16,256,1024,4096,16384,65536,131072',
        help: 'context lengths',
      },
      steps: { type: 'int', min: 1, default: 8, help: 'timed steps' },
      out: outFile('hybrid-context-cost'),
    },
  ),
  'webgpu-report': spec(
    'webgpu-report',
    "markdown tables from the WebGPU benchmarks' JSON files",
    'mamba-ts bench webgpu-report [--dir <dir>]',
    {
      dir: {
        type: 'string',
        arg: '<dir>',
        nonEmpty: true,
        defaultText: 'bench/results',
        help: 'where webgpu-scan.json, webgpu-decode.json ... are',
      },
    },
  ),
} as const satisfies Record<string, CommandSpec>;

export type BenchSuite = keyof typeof BENCH_SUITES;

/** The repository root (dist/src/cli -> ..). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * A bench program's arguments, parsed with its table: prints the help and exits on --help, prints
 * `error[CODE]: message` and exits 2 on a bad option.
 */
export function benchArgs<S extends BenchSuite>(
  suite: S,
  argv: readonly string[] = process.argv.slice(2),
): Values<(typeof BENCH_SUITES)[S]['options']> {
  const s = BENCH_SUITES[suite];
  try {
    const r = parse(s as CommandSpec, argv);
    if (r.help) {
      process.stdout.write(helpText(s));
      process.exit(0);
    }
    return r.values as Values<(typeof BENCH_SUITES)[S]['options']>;
  } catch (e) {
    if (!isMambaError(e)) throw e;
    process.stderr.write(`mamba-ts: error[${e.code}]: ${e.message}\n`);
    process.exit(2);
  }
}

/** `new Date()` as a file-name part: 2026-12-07T01-02-03-456Z. */
export const fileStamp = (d = new Date()): string => d.toISOString().replace(/[:.]/g, '-');

/**
 * Where a run's results go: `out` when given, else a new `bench/results/<name>-<date>.json` (never a
 * committed file); its folder is created.
 */
export function resultFile(name: string, out?: string): string {
  const file = out ?? join(REPO_ROOT, 'bench', 'results', `${name}-${fileStamp()}.json`);
  mkdirSync(dirname(file), { recursive: true });
  return file;
}
