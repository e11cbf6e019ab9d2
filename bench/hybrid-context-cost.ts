/**
 * Cost per token against context for a Mamba-2 + attention hybrid (issue 14's context-cost table):
 * decode time per token and the state's bytes after c tokens of context, c = 1 .. 131072, for three
 * models of one shape that differ only in their layer types (Granite 4.0-H's layout, read through the
 * real config parser and built by the real hybrid builder, random weights):
 *   - hybrid: Mamba-2 layers with one attention layer in every `--attention-every` (Granite 4.0-H 1B
 *     has 4 attention layers in 40: one in 10);
 *   - Mamba-2: every layer Mamba-2;
 *   - attention: every layer attention (GQA, RoPE).
 * Every layer has the same shared SwiGLU MLP after its mixer, so the three differ only in the mixer.
 * The attention layers' KV caches are filled with random keys and values and their length set to c
 * instead of prefilling c tokens: the step's work and memory traffic depend only on c.
 * The default CPU backend on one thread; each step is timed as wall clock and as this process's CPU time
 * (process.cpuUsage, which on a shared machine leaves out time spent waiting for a core); tables use CPU
 * time, the JSON keeps both and the load average.
 *
 * Usage: node dist/bench/hybrid-context-cost.js [options], or mamba-ts bench hybrid-context-cost
 *        (options and defaults: --help; one table in src/cli/bench-suites.ts).
 * Writes the JSON (default: a new bench/results/hybrid-context-cost-<date>.json) and the markdown table
 * beside it (.md).
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { numberList } from '../src/cli/args.js';
import { benchArgs, resultFile } from '../src/cli/bench-suites.js';
import { cpu } from '../src/backend/cpu/cpu-backend.js';
import type { TensorEntry, TensorSource } from '../src/io/tensor-source.js';
import { Rng } from '../src/mixers/init.js';
import { buildHybrid, expectedHybridTensors } from '../src/models/build-hybrid.js';
import { type HybridConfig, parseHybridConfig } from '../src/models/config-hybrid.js';
import type { LanguageModel } from '../src/models/lm.js';
import { timeSteps } from './step-timing.js';
import { graniteConfigJson, randomHybridValues } from './granite-random.js';

const a = benchArgs('hybrid-context-cost');
const d = a['d-model'],
  nLayer = a.layers,
  every = a['attention-every'],
  steps = a.steps;
const contexts = numberList(a.contexts, 'contexts', { int: true, min: 1 });
const bk = cpu();

type Kind = 'hybrid' | 'mamba2' | 'attention';
const KINDS: readonly Kind[] = ['hybrid', 'mamba2', 'attention'];

/** Granite 4.0-H's config.json (transformers 5 vocabulary) with the layer types of `kind`. */
function configOf(kind: Kind): HybridConfig {
  const types = Array.from({ length: nLayer }, (_, i) =>
    kind === 'attention' || (kind === 'hybrid' && i % every === every - 1) ? 'full_attention' : 'linear_attention',
  );
  return parseHybridConfig(
    graniteConfigJson({ dModel: d, layerTypes: types, vocab: a.vocab, kvHeads: a['kv-heads'], dState: a['d-state'] }),
  );
}

/** Random weights of the expected shapes (A_log and norms near their usual values). */
function randomSource(c: HybridConfig): TensorSource {
  const entries = new Map<string, TensorEntry>();
  for (const e of expectedHybridTensors(c)) {
    if (e.optional) continue;
    const n = e.shape.reduce((x, y) => x * y, 1);
    entries.set(e.name, { name: e.name, dtype: 'F32', shape: e.shape, byteLength: n * 4 });
  }
  const rng = new Rng(7);
  return {
    description: `random ${c.arch} weights`,
    entries,
    metadata: {},
    async read(name: string): Promise<Uint8Array> {
      const e = entries.get(name);
      if (!e) throw new Error(`no tensor ${name}`);
      const v = randomHybridValues(name, e.shape, rng);
      return new Uint8Array(v.buffer);
    },
    async close(): Promise<void> {},
  };
}

interface DecodePoint {
  context: number;
  msPerToken: number;
  cpuMsPerToken: number;
  /** The state after `context` tokens: constant part + KV caches at exactly `context` rows. */
  stateBytes: number;
}

/** Median time of `steps` decode steps after the state has seen `context` tokens. */
function decodeAt(m: LanguageModel<HybridConfig>, context: number): DecodePoint {
  const st = m.initState(1);
  const rng = new Rng(context);
  const cap = context + steps + 4;
  for (const layer of st.layers) {
    if (!layer.k) continue;
    const w = layer.k.dim(2);
    for (const name of ['k', 'v'] as const) {
      layer[name].dispose();
      const t = bk.alloc([1, cap, w]).keep();
      const s = t.storage as Float32Array;
      for (let i = 0; i < context * w; i++) s[i] = rng.normal();
      layer[name] = t;
    }
    (layer.length.storage as Float32Array)[0] = context;
  }
  st.position = context;
  const stateBytes = st.constantBytes + st.bytesPerToken * context;
  const t = timeSteps(steps, (i) => {
    m.stepIds([i % a.vocab], st);
  });
  st.dispose();
  return { context, ...t, stateBytes };
}

const models = new Map<Kind, LanguageModel<HybridConfig>>();
const layerTypes: Record<string, string> = {};
for (const k of KINDS) {
  const c = configOf(k);
  models.set(k, await buildHybrid(c, randomSource(c), bk));
  layerTypes[k] = c.layers.map((l) => (l.mixer === 'attention' ? 'A' : 'M')).join('');
}
for (const m of models.values()) {
  decodeAt(m, 1);
  decodeAt(m, 64);
}
const out = {
  format: 'mamba-ts-hybrid-context-cost/1',
  command: ['node', 'dist/bench/hybrid-context-cost.js', ...process.argv.slice(2)].join(' '),
  config: { dModel: d, layers: nLayer, attentionEvery: every, kvHeads: a['kv-heads'], dState: a['d-state'], steps },
  layerTypes,
  parameters: Object.fromEntries([...models].map(([k, m]) => [k, m.parameterCount()])),
  decode: { hybrid: [] as DecodePoint[], mamba2: [] as DecodePoint[], attention: [] as DecodePoint[] },
  machine: {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    node: process.version,
    loadAverageAtStart: loadavg()[0],
    kernels: bk.kernels,
  },
  date: new Date().toISOString(),
};
for (const c of contexts) {
  for (const k of KINDS) {
    const p = decodeAt(models.get(k)!, c);
    out.decode[k].push(p);
    console.log(
      `${k.padEnd(9)} context ${String(c).padStart(6)}: ${p.cpuMsPerToken.toFixed(2)} ms/token CPU ` +
        `(${p.msPerToken.toFixed(2)} wall), state ${kib(p.stateBytes)}`,
    );
  }
}
out.machine = { ...out.machine, loadAverageAtEnd: loadavg()[0] } as typeof out.machine;
const file = resultFile('hybrid-context-cost', a.out);
writeFileSync(file, JSON.stringify(out, null, 1) + '\n');
const md = file.replace(/\.json$/, '') + '.md';
writeFileSync(md, markdown());
console.log(`${file}\n${md}`);

function kib(b: number): string {
  return b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`;
}

function markdown(): string {
  const lines = [
    out.command,
    '',
    `Decode, batch 1, d_model ${d}, ${nLayer} layers (hybrid ${layerTypes.hybrid}: M Mamba-2, A attention with ` +
      `${a['kv-heads']} KV heads of 64), each with a SwiGLU MLP; ${out.machine.cpu}, ${out.machine.kernels} kernels, ` +
      `one thread; CPU milliseconds per token, median of ${steps} steps; state = recurrent states + KV caches.`,
    '',
    '| context (tokens) | hybrid ms/token | Mamba-2 ms/token | attention ms/token | hybrid state | Mamba-2 state | attention state |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  out.decode.hybrid.forEach((h, i) => {
    const m = out.decode.mamba2[i],
      at = out.decode.attention[i];
    lines.push(
      `| ${h.context} | ${h.cpuMsPerToken.toFixed(2)} | ${m.cpuMsPerToken.toFixed(2)} | ${at.cpuMsPerToken.toFixed(2)} | ` +
        `${kib(h.stateBytes)} | ${kib(m.stateBytes)} | ${kib(at.stateBytes)} |`,
    );
  });
  return lines.join('\n') + '\n';
}
