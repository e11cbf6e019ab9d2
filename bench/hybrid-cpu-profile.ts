/**
 * Where a hybrid's CPU time goes, op by op (issue 14): prefill of `--prefill` tokens and batch-1 decode
 * of a Mamba-2 + attention hybrid in the public shapes of the llama.cpp side-by-side
 * (bench/llama-cpp-models.ts: granite-4.0-h-1b, granite-4.0-h-350m, falcon-h1-0.5b), random weights,
 * WebAssembly kernels, on each of `--threads`. Every kernel call of the backend is timed
 * (bench/cpu-op-timer.ts); products are named by the weight they multiply (in_proj, out_proj, MLP, q/k/v/o,
 * lm_head), the rest by kernel; "JS between ops" is the forward's time outside every kernel call.
 *
 *   npm run build && node dist/bench/hybrid-cpu-profile.js [--model granite-4.0-h-1b] [--layers 10]
 *     [--dtype f32] [--threads 1,2] [--prefill 512] [--decode 16] [--prompt 32] [--reps 2]
 *     [--no-ops] [--json-only] [--out <file>]
 *
 * `--layers` keeps that many of the model's layers, spread evenly over the original stack so that the
 * share of attention layers stays (Granite 4.0-H 1B: 4 of 40; 10 keeps layer 10, one attention layer);
 * the widths are the model's. `--no-ops` times the totals only (no per-op wrappers); `--json-only` prints
 * one JSON line (for alternating runs of two builds). The table goes to stdout, the JSON (machine,
 * command, load average) to `--out` or a new bench/results/hybrid-cpu-profile-<date>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { buildHybrid } from '../src/models/build-hybrid.js';
import { parseHybridConfig } from '../src/models/config-hybrid.js';
import type { WeightDType } from '../src/models/weights.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { OpTimer, type OpRow } from './cpu-op-timer.js';
import { fewerLayers, randomSource } from './bench-model-source.js';
import { BENCH_MODELS } from './llama-cpp-models.js';
import { commandLine, hostMachine } from './machine.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const { values: o } = parseArgs({
  options: {
    model: { type: 'string', default: 'granite-4.0-h-1b' },
    layers: { type: 'string', default: '10' },
    dtype: { type: 'string', default: 'f32' },
    threads: { type: 'string', default: '1,2' },
    prefill: { type: 'string', default: '512' },
    decode: { type: 'string', default: '16' },
    prompt: { type: 'string', default: '32' },
    reps: { type: 'string', default: '2' },
    'no-ops': { type: 'boolean', default: false },
    'json-only': { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (o.help) {
  process.stdout.write(
    `usage: node dist/bench/hybrid-cpu-profile.js [--model ${Object.keys(BENCH_MODELS)
      .filter((k) => k !== '130m')
      .join('|')}] [--layers 10] [--dtype f32|f16|q8|q4] [--threads 1,2] [--prefill 512] [--decode 16]` +
      ` [--prompt 32] [--reps 2] [--no-ops] [--json-only] [--out <file>]\n`,
  );
  process.exit(0);
}
const make = BENCH_MODELS[o.model];
if (!make || o.model === '130m') {
  process.stderr.write(`--model ${o.model}: choose one of ${Object.keys(BENCH_MODELS).join(', ')} (not 130m)\n`);
  process.exit(2);
}
const int = (s: string, name: string): number => {
  const v = Number(s);
  if (!Number.isInteger(v) || v < 0) {
    process.stderr.write(`--${name} ${s}: expected a non-negative integer\n`);
    process.exit(2);
  }
  return v;
};
const threadList = o.threads.split(',').map((t) => int(t, 'threads'));
const prefill = int(o.prefill, 'prefill'),
  decode = int(o.decode, 'decode'),
  promptLen = int(o.prompt, 'prompt'),
  reps = Math.max(1, int(o.reps, 'reps'));

const full = make();
const { model: bm, picked } = fewerLayers(full, int(o.layers, 'layers'));
const config = parseHybridConfig(bm.config, `${bm.name} (bench)`);
const bk = new CpuBackend({ kernels: 'wasm' });
const lm = await buildHybrid(config, randomSource(bm), bk, o.dtype as WeightDType);
const V = lm.vocabSize;

/** A Hub tensor name without its layer prefix and `.weight`. */
function shortName(hf: string): string {
  return hf
    .replace(/^model\.layers\.\d+\./, '')
    .replace(/\.weight$/, '')
    .replace(/^model\.embed_tokens$/, 'lm_head (tied to embed_tokens)');
}

/**
 * A product is named by the weight it multiplies: the Hub names of the matrices of that shape, or, for
 * projections stacked at load (models/stack-rows.ts, named `a + b + c`), the names of its parts.
 */
const weightNames = new Map<string, Set<string>>();
for (const t of bm.tensors) {
  if (t.shape.length !== 2) continue;
  const short = shortName(t.hf);
  if (short.endsWith('embed_tokens)') && bm.config.tie_word_embeddings !== true) continue; // a gather, not a product
  const key = `${t.shape[0]}x${t.shape[1]}`;
  if (!weightNames.has(key)) weightNames.set(key, new Set());
  weightNames.get(key)!.add(short);
}
const label = (name: string, args: unknown[]): string => {
  if (name === 'matmul') {
    const w = args[2] as Tensor;
    if (w.name?.includes(' + ')) return `matmul ${w.name.split(' + ').map(shortName).join(' + ')}`;
    const names = weightNames.get(`${w.rows}x${w.cols}`);
    return `matmul ${names ? [...names].join(' / ') : `${w.rows}x${w.cols}`}`;
  }
  if (name === 'unary' || name === 'binary') return `${name} ${args[0] as string}`;
  return name;
};
const timer = o['no-ops'] ? undefined : new OpTimer(bk, label);

const ids = (n: number, salt: number): Int32Array =>
  Int32Array.from({ length: n }, (_, i) => ((i * 7919 + salt * 104729 + 13) % (V - 300)) + 300);

interface Phase {
  /** Wall time (prefill: of the whole prompt; decode: per token). */
  ms: number;
  /** This process's CPU time (user + system, all its threads) over the same span: on a shared machine it
   * leaves out the time spent waiting for a core (with one thread the better measure of the code). */
  cpuMs: number;
  rows: OpRow[];
}

/** This process's CPU milliseconds so far. */
function cpuNow(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function timePrefill(): Phase {
  const t = bk.upload(ids(prefill, 3), [1, prefill], 'i32');
  timer?.reset();
  if (timer) timer.on = true;
  const t0 = performance.now(),
    c0 = cpuNow();
  const logits = lm.forward(t, { lastOnly: true });
  bk.readSync(logits);
  const ms = performance.now() - t0,
    cpuMs = cpuNow() - c0;
  if (timer) timer.on = false;
  logits.dispose();
  t.dispose();
  return { ms, cpuMs, rows: timer?.report(ms) ?? [] };
}

function timeDecode(): Phase {
  const state = lm.initState(1);
  const out = bk.zeros([1], 'i32');
  const p = bk.upload(ids(promptLen, 2), [1, promptLen], 'i32');
  bk.argmax(out, lm.forward(p, { state, lastOnly: true }));
  p.dispose();
  let token = (bk.readSync(out) as Int32Array)[0];
  timer?.reset();
  if (timer) timer.on = true;
  const t0 = performance.now(),
    c0 = cpuNow();
  for (let i = 0; i < decode; i++) {
    bk.argmax(out, lm.stepIds([token], state));
    token = (bk.readSync(out) as Int32Array)[0];
  }
  const ms = (performance.now() - t0) / decode,
    cpuMs = (cpuNow() - c0) / decode;
  if (timer) timer.on = false;
  state.dispose();
  out.dispose();
  const rows = (timer?.report(ms * decode) ?? []).map((r) => ({ ...r, ms: r.ms / decode, calls: r.calls / decode }));
  return { ms, cpuMs, rows };
}

/** The rep with the median total. */
function medianOf(runs: Phase[]): Phase {
  return [...runs].sort((a, b) => a.ms - b.ms)[runs.length >> 1];
}

const loadBefore = loadavg();
const results: { threads: number; prefill: Phase | null; decode: Phase | null }[] = [];
// one untimed prefill of the full length first: the arenas grow to its activations and their pages are touched
if (prefill > 0) {
  const w = bk.upload(ids(prefill, 4), [1, prefill], 'i32');
  lm.forward(w, { lastOnly: true }).dispose();
  w.dispose();
}
for (const n of threadList) {
  await bk.useThreads(n);
  // warm-up: kernels compiled, workers started, pages touched
  {
    const st = lm.initState(1);
    const w = bk.upload(ids(8, 1), [1, 8], 'i32');
    lm.forward(w, { state: st, lastOnly: true }).dispose();
    lm.stepIds([300], st); // (the step's logits are a buffer the model keeps)
    w.dispose();
    st.dispose();
  }
  const pre: Phase[] = [],
    dec: Phase[] = [];
  for (let r = 0; r < reps; r++) {
    if (prefill > 0) pre.push(timePrefill());
    if (decode > 0) dec.push(timeDecode());
  }
  results.push({ threads: n, prefill: pre.length ? medianOf(pre) : null, decode: dec.length ? medianOf(dec) : null });
}
bk.dispose();
const loadAfter = loadavg();

const summary = results.map((r) => ({
  threads: r.threads,
  prefillTokS: r.prefill ? prefill / (r.prefill.ms / 1000) : null,
  decodeTokS: r.decode ? 1000 / r.decode.ms : null,
  prefillCpuMs: r.prefill ? r.prefill.cpuMs : null,
  decodeCpuMsPerToken: r.decode ? r.decode.cpuMs : null,
}));
if (o['json-only']) {
  process.stdout.write(`${JSON.stringify({ model: bm.name, layers: picked.length, dtype: o.dtype, summary })}\n`);
  process.exit(0);
}

const date = new Date().toISOString();
// A attention, M Mamba-2, P both side by side (Falcon-H1)
const layerKinds = config.layers
  .map((l) => (l.mixer === 'attention' ? 'A' : l.mixer === 'mamba2' ? 'M' : 'P'))
  .join('');
const report = {
  format: 'mamba-ts-hybrid-cpu-profile/1',
  date,
  command: commandLine(),
  machine: hostMachine(),
  loadAverage: { before: loadBefore, after: loadAfter },
  settings: {
    model: bm.name,
    layers: picked.length,
    pickedLayers: picked,
    layerKinds,
    dtype: o.dtype,
    prefill,
    decode,
    promptLen,
    reps,
    kernels: bk.kernels,
  },
  results: results.map((r, i) => ({ ...r, ...summary[i] })),
};
const file =
  o.out ?? join(ROOT, 'bench', 'results', `hybrid-cpu-profile-${date.slice(0, 19).replace(/[:T]/g, '-')}.json`);
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, `${JSON.stringify(report, null, 1)}\n`);

const f = (x: number, d = 1): string => x.toFixed(d);
const lines: string[] = [
  report.command,
  '',
  `${bm.name}, ${picked.length} of ${full.config.num_hidden_layers} layers (${layerKinds}), ${o.dtype}, ` +
    `WebAssembly kernels; prefill of ${prefill} tokens (logits of the last), decode after a ${promptLen}-token prompt; ` +
    `median of ${reps}; load average ${loadBefore.map((x) => f(x, 2)).join(' ')} -> ${loadAfter.map((x) => f(x, 2)).join(' ')}`,
];
for (const r of results) {
  const s = summary.find((x) => x.threads === r.threads)!;
  lines.push(
    '',
    `threads ${r.threads}: prefill ${s.prefillTokS ? f(s.prefillTokS) : '-'} tok/s (CPU ${r.prefill ? f(r.prefill.cpuMs) : '-'} ms), ` +
      `decode ${s.decodeTokS ? f(s.decodeTokS, 2) : '-'} tok/s (CPU ${r.decode ? f(r.decode.cpuMs, 2) : '-'} ms/token)`,
    '',
  );
  if (!timer) continue;
  lines.push(
    '| op | prefill ms | % | calls | decode ms/token | % | calls/token |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const ops = new Map<string, { p?: OpRow; d?: OpRow }>();
  for (const x of r.prefill?.rows ?? []) ops.set(x.op, { p: x });
  for (const x of r.decode?.rows ?? []) ops.set(x.op, { ...ops.get(x.op), d: x });
  const byPrefill = [...ops].sort(
    (a, b) => (b[1].p?.ms ?? 0) - (a[1].p?.ms ?? 0) || (b[1].d?.ms ?? 0) - (a[1].d?.ms ?? 0),
  );
  for (const [op, { p, d }] of byPrefill)
    lines.push(
      `| ${op} | ${p ? f(p.ms) : '-'} | ${p && r.prefill ? f((100 * p.ms) / r.prefill.ms) : '-'} | ${p ? p.calls : '-'} | ` +
        `${d ? f(d.ms, 3) : '-'} | ${d && r.decode ? f((100 * d.ms) / r.decode.ms) : '-'} | ${d ? f(d.calls, 0) : '-'} |`,
    );
  lines.push(
    `| total | ${r.prefill ? f(r.prefill.ms) : '-'} | 100 | | ${r.decode ? f(r.decode.ms, 3) : '-'} | 100 | |`,
  );
}
process.stdout.write(`${lines.join('\n')}\n\nwrote ${file}\n`);
