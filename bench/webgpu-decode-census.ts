/**
 * Census of the GPU work of one batch-1 decode token of the hybrids (issue 14): compute dispatches,
 * pipeline switches, buffer-to-buffer copies, queue writes, queue submissions and GPU->CPU read-backs
 * per token, broken down by layer type, mixer and kernel. Counts, not timings: it runs on SwiftShader as
 * well as on a GPU, so a GPU session can pair its table with bench/webgpu-hybrid.ts's tokens/s.
 *   node dist/bench/webgpu-decode-census.js [--models granite-4.0-h-1b,falcon-h1-0.5b] [--prompt 8]
 *        [--tokens 2] [--vocab 2048] [--out DIR]
 * The models are the public shapes of bench/llama-cpp-models.ts (widths, heads, d_state, MLP) with a few
 * of their layers (one of each layer type, plus a second Mamba-2 layer) and a small vocabulary: the
 * counts per layer do not depend on how many layers follow or on the vocabulary, so the full model's
 * counts per token are extrapolated exactly: model-level work + Σ over layer types (count per layer ×
 * layers of that type in the full model). The decode loop is the device loop (generate/device-loop.ts:
 * step, GPU sampling, read-back of the id), without lookahead so that each token's work is counted apart,
 * and unrecorded (the backend's `record` hidden): a replay issues the recorded step's dispatches without
 * running the code the census watches, so the census counts the step itself, every token. What a replay
 * saves is host work (encoding, parameter writes), not dispatches.
 * Writes webgpu-decode-census.json (machine, command, counts) into --out (default bench/results).
 */
import { GREEDY } from '../src/backend/sampling.js';
import type { Pipe } from '../src/backend/webgpu/dispatcher.js';
import { choiceList, numberList } from '../src/cli/args.js';
import { deviceTokens } from '../src/generate/device-loop.js';
import type { TensorEntry, TensorSource } from '../src/io/tensor-source.js';
import { buildHybrid } from '../src/models/build-hybrid.js';
import { isHybridConfig, parseHybridConfig } from '../src/models/config-hybrid.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { BENCH_MODELS, type BenchModel } from './llama-cpp-models.js';
import { backend, machine, table, writeResult } from './webgpu-common.js';
import { argvOptions } from './argv.js';

const arg = argvOptions(['models', 'prompt', 'tokens', 'vocab', 'out']);
const models = choiceList(arg('models', 'granite-4.0-h-1b,falcon-h1-0.5b'), 'models', Object.keys(BENCH_MODELS));
const [promptLen] = numberList(arg('prompt', '8'), 'prompt', { int: true, min: 1 });
const [tokens] = numberList(arg('tokens', '2'), 'tokens', { int: true, min: 1 });
const [vocab] = numberList(arg('vocab', '2048'), 'vocab', { int: true, min: 16 });
const out = process.argv.includes('--out') ? arg('out', '') : undefined;

/** The type of each layer of a bench model's config (Granite: layer_types; Falcon-H1: every layer alike). */
function layerTypes(config: Record<string, unknown>): string[] {
  const n = config.num_hidden_layers as number;
  const types = config.layer_types as string[] | undefined;
  return types ?? Array.from({ length: n }, () => 'parallel');
}

/**
 * The bench model cut to the layers `keep` (renumbered 0..) and `V` tokens of vocabulary; the widths
 * stay. The tensors are f32 drawn like bench/webgpu-hybrid.ts's (the values change no count).
 */
function cut(bm: BenchModel, keep: number[], V: number): { config: Record<string, unknown>; source: TensorSource } {
  const types = layerTypes(bm.config);
  const config: Record<string, unknown> = { ...bm.config, num_hidden_layers: keep.length, vocab_size: V };
  if (bm.config.layer_types) config.layer_types = keep.map((i) => types[i]);
  const shapes = new Map<string, number[]>();
  for (const t of bm.tensors) {
    const m = /^model\.layers\.(\d+)\.(.*)$/.exec(t.hf);
    if (m) {
      const j = keep.indexOf(Number(m[1]));
      if (j >= 0) shapes.set(`model.layers.${j}.${m[2]}`, t.shape);
    } else shapes.set(t.hf, t.shape[0] === bm.vocab ? [V, ...t.shape.slice(1)] : t.shape);
  }
  const entries = new Map<string, TensorEntry>();
  for (const [name, shape] of shapes)
    entries.set(name, { name, dtype: 'F32', shape, byteLength: 4 * shape.reduce((a, b) => a * b, 1) });
  const source: TensorSource = {
    description: `random ${bm.name} weights, layers ${keep.join(',')}`,
    entries,
    metadata: {},
    async read(name: string): Promise<Uint8Array> {
      const shape = shapes.get(name);
      if (!shape) throw new Error(`no tensor ${name}`);
      const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
      const norm = /norm|\.D$/.test(name);
      const aLog = name.endsWith('A_log');
      const dtBias = name.endsWith('dt_bias');
      let s = name.length * 7919;
      for (let i = 0; i < v.length; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) | 0;
        const r = s / 2147483648;
        v[i] = norm ? 1 + 0.2 * r : aLog ? Math.log(1 + (i % 8)) : dtBias ? -4.6 + r : r / Math.sqrt(shape.at(-1)!);
      }
      return new Uint8Array(v.buffer);
    },
    async close(): Promise<void> {},
  };
  return { config, source };
}

/** Counts of one scope (a layer type's block, or the model-level work). */
interface Counts {
  dispatches: number;
  pipelineSwitches: number;
  copies: number;
  queueWrites: number;
  submits: number;
  readBacks: number;
  kernels: Record<string, number>;
}
const zero = (): Counts => ({
  dispatches: 0,
  pipelineSwitches: 0,
  copies: 0,
  queueWrites: 0,
  submits: 0,
  readBacks: 0,
  kernels: {},
});

const gpu = await backend();
const results: Record<string, unknown>[] = [];
const rows: (string | number)[][] = [
  ['model', 'scope', 'per', 'dispatches', 'pipeline switches', 'copies', 'queue writes', 'submits', 'read-backs'],
];
const kernelRows: (string | number)[][] = [['model', 'scope', 'kernel', 'dispatches per token']];
try {
  for (const name of models) {
    const bm = BENCH_MODELS[name]();
    if (!isHybridConfig(bm.config)) throw new Error(`${name} is not a hybrid`);
    const types = layerTypes(bm.config);
    // one layer of each type (the first), plus the first two Mamba-2 layers: a Mamba layer after a Mamba layer
    const keep = [...new Set([...types.map((t) => types.indexOf(t)), ...[0, 1]])].sort((a, b) => a - b);
    const { config, source } = cut(bm, keep, vocab);
    const model = await buildHybrid(parseHybridConfig(config), source, gpu, 'f32');
    if (model.blocks.length !== 2 * keep.length)
      throw new Error(`${name}: ${model.blocks.length} blocks for ${keep.length} layers (expected mixer + MLP each)`);

    // ---- instrumentation: the scope is the block being stepped (its layer's type and its mixer),
    // then the glue that follows it (its residual scale, the next norm), else the model's own work
    const perScope = new Map<string, Counts>();
    let scope = 'model';
    let counting = false;
    const at = (): Counts | undefined => {
      if (!counting) return undefined;
      let c = perScope.get(scope);
      if (!c) perScope.set(scope, (c = zero()));
      return c;
    };
    model.blocks.forEach((blk, i) => {
      const label = `${config.layer_types ? (config.layer_types as string[])[i >> 1] : 'layer'}/${blk.mixer.kind}`;
      const m = blk.mixer as unknown as Record<string, (...a: unknown[]) => unknown>;
      for (const method of ['step', 'blockStep'] as const) {
        const f = m[method];
        if (!f) continue;
        m[method] = (...a: unknown[]): unknown => {
          scope = label;
          try {
            return f.apply(blk.mixer, a);
          } finally {
            // after the last block comes the model's closing work (norm_f, lm_head, sampling, read-back)
            scope = i === model.blocks.length - 1 ? 'model' : `${label} (glue after)`;
          }
        };
      }
    });
    const d = gpu.d as unknown as {
      run: (p: Pipe, ...rest: unknown[]) => void;
      copy: (...a: unknown[]) => void;
      pipe: (key: string, ...rest: unknown[]) => Pipe;
      flush: () => void;
      pending: number;
      stats: { dispatches: number; submits: number };
    };
    const keyOf = new WeakMap<Pipe, string>();
    const { run, copy, pipe, flush } = { run: d.run, copy: d.copy, pipe: d.pipe, flush: d.flush };
    let last: Pipe | null = null;
    d.pipe = (key: string, ...rest: unknown[]): Pipe => {
      const p = pipe.call(gpu.d, key, ...rest);
      keyOf.set(p, key);
      return p;
    };
    d.run = (p: Pipe, ...rest: unknown[]): void => {
      const before = d.stats.dispatches;
      run.call(gpu.d, p, ...rest);
      const c = at();
      if (!c || d.stats.dispatches === before) return;
      c.dispatches++;
      const k = keyOf.get(p) ?? p.name;
      c.kernels[k] = (c.kernels[k] ?? 0) + 1;
      if (p !== last) c.pipelineSwitches++;
      last = p;
    };
    d.copy = (...a: unknown[]): void => {
      copy.apply(gpu.d, a);
      last = null; // a copy ends the compute pass
      const c = at();
      if (c) c.copies++;
    };
    d.flush = (): void => {
      const before = d.stats.submits;
      flush.call(gpu.d);
      last = null;
      const c = at();
      if (c && d.stats.submits > before) c.submits++;
    };
    const queue = gpu.device.queue;
    const writeBuffer = queue.writeBuffer;
    queue.writeBuffer = ((...a: Parameters<GPUQueue['writeBuffer']>) => {
      const c = at();
      if (c) c.queueWrites++;
      return writeBuffer.apply(queue, a);
    }) as GPUQueue['writeBuffer'];
    // the norm that ends a block's glue (the next block's input, or norm_f): what follows is the model's
    const addRmsnorm = gpu.addRmsnorm;
    gpu.addRmsnorm = (...a: Parameters<typeof addRmsnorm>): void => {
      addRmsnorm.apply(gpu, a);
      if (scope.endsWith('(glue after)')) scope = 'model';
    };
    const read = gpu.read;
    gpu.read = (t: Tensor): Promise<Float32Array | Int32Array> => {
      const c = at();
      if (c) c.readBacks++;
      return read.call(gpu, t);
    };
    // the loop unrecorded (see the header): an own property hides the backend's method until deleted
    Object.defineProperty(gpu, 'record', { value: undefined, configurable: true, writable: true });
    try {
      const ids = Int32Array.from({ length: promptLen }, (_, i) => 1 + ((i * 7) % (vocab - 1)));
      const prompt = gpu.upload(ids, [1, promptLen], 'i32');
      const state = model.initState(1);
      const logits = model.forward(prompt, { state, lastOnly: true });
      await gpu.read(logits);
      // lookahead 0: token t's work is encoded after token t-1's id was read; the first token is sampled
      // from the prompt's logits (no step), so counting starts once it is out
      let got = 0;
      for await (const _ of deviceTokens(model, state, logits, {
        maxNewTokens: tokens + 1,
        sampling: GREEDY,
        lookahead: 0,
      })) {
        got++;
        counting = got >= 1 && got <= tokens;
        scope = 'model';
      }
      counting = false;
      logits.dispose();
      prompt.dispose();
      state.dispose();
    } finally {
      delete (gpu as { record?: unknown }).record;
      Object.assign(d, { run, copy, pipe, flush });
      queue.writeBuffer = writeBuffer;
      gpu.read = read;
      gpu.addRmsnorm = addRmsnorm;
    }

    // ---- per token, per layer type, extrapolated to the full model
    const keptTypes = keep.map((i) => types[i]);
    const perLayer = new Map<string, Counts>(); // layer type -> counts per layer of that type
    const model0 = zero();
    const addTo = (into: Counts, c: Counts, f: number): void => {
      for (const k of ['dispatches', 'pipelineSwitches', 'copies', 'queueWrites', 'submits', 'readBacks'] as const)
        into[k] += c[k] * f;
      for (const [k, n] of Object.entries(c.kernels)) into.kernels[k] = (into.kernels[k] ?? 0) + n * f;
    };
    const scopes: Record<string, Counts> = {};
    for (const [s, c] of perScope) {
      const perToken = zero();
      addTo(perToken, c, 1 / tokens);
      scopes[s] = perToken;
      const type = s === 'model' ? undefined : s.split('/')[0];
      if (type === undefined) addTo(model0, perToken, 1);
      else {
        const t = type === 'layer' ? 'parallel' : type;
        let l = perLayer.get(t);
        if (!l) perLayer.set(t, (l = zero()));
        addTo(l, perToken, 1 / keptTypes.filter((k) => k === t).length);
      }
    }
    const full = zero();
    addTo(full, model0, 1);
    for (const [t, c] of perLayer) addTo(full, c, types.filter((k) => k === t).length);
    const fmt = (n: number): string => (Number.isInteger(n) ? `${n}` : n.toFixed(2));
    const row = (s: string, per: string, c: Counts): (string | number)[] => [
      name,
      s,
      per,
      fmt(c.dispatches),
      fmt(c.pipelineSwitches),
      fmt(c.copies),
      fmt(c.queueWrites),
      fmt(c.submits),
      fmt(c.readBacks),
    ];
    rows.push(row('model-level (embedding, final norm, lm_head, sampling)', 'token', model0));
    for (const [t, c] of perLayer)
      rows.push(row(`${t} layer (${types.filter((k) => k === t).length} in the model)`, 'layer', c));
    rows.push(row(`full model (${types.length} layers)`, 'token', full));
    for (const [s, c] of Object.entries(scopes))
      for (const [k, n] of Object.entries(c.kernels).sort((a, b) => b[1] - a[1])) kernelRows.push([name, s, k, fmt(n)]);
    results.push({
      model: name,
      source: bm.source,
      layers: types.length,
      keptLayers: keep,
      keptLayerTypes: keptTypes,
      vocab,
      promptTokens: promptLen,
      countedTokens: tokens,
      perToken: { full, modelLevel: model0, perLayer: Object.fromEntries(perLayer) },
      perScope: scopes,
    });
    console.log(`${name}: ${fmt(full.dispatches)} dispatches, ${fmt(full.submits)} submits per token (full model)`);
    for (const p of model.parameters().values()) p.dispose();
  }
} finally {
  console.log(table(rows));
  console.log(table(kernelRows));
  const file = writeResult(
    'webgpu-decode-census',
    {
      machine: machine(gpu),
      command: ['node', ...process.argv.slice(1)].join(' '),
      date: new Date().toISOString(),
      results,
    },
    out,
  );
  console.log(file);
  gpu.dispose();
}
