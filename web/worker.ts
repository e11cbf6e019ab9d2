/**
 * The model's thread: loads a checkpoint (through the caching fetch), generates on WebGPU or the
 * WebAssembly CPU backend, and traces the text on the CPU backend for the "inside the model" views.
 * The page never computes, so it stays responsive however long a token takes.
 */
import {
  createWebGpuBackend,
  initWasmKernels,
  isMambaError,
  loadModelFromUrl,
  type Backend,
  type Model,
} from '../src/browser.js';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { traceModel } from '../src/inspect/trace.js';
import { cachedFetch } from './cached-fetch.js';
import { runSelection } from './selection-run.js';
import type { BackendChoice, FromWorker, LoadedInfo, SamplingOptions, ToWorker } from './protocol.js';

/** Tokens traced at most (the views draw one column per token). */
const TRACE_MAX_TOKENS = 400;

const ctx = self as unknown as {
  postMessage(m: FromWorker, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
};
const post = (m: FromWorker, transfer: Transferable[] = []): void => ctx.postMessage(m, transfer);

let model: Model | undefined;
let tracer: Promise<Model> | undefined; // the same checkpoint on the CPU, for traces
let gpu: Backend | undefined;
let url = '';
let fetchFn: typeof fetch = fetch;
let abort: AbortController | undefined;

function message(e: unknown): string {
  if (isMambaError(e)) return `${e.message} [${e.code}]`;
  return e instanceof Error ? e.message : String(e);
}

async function cpuBackend(): Promise<CpuBackend> {
  await initWasmKernels();
  return new CpuBackend();
}

async function load(modelUrl: string, choice: BackendChoice): Promise<void> {
  const t0 = performance.now();
  model = undefined;
  tracer = undefined;
  gpu?.dispose?.();
  gpu = undefined;
  url = modelUrl;
  const cf = cachedFetch((file, loaded, total) => post({ type: 'progress', file, loaded, total }));
  fetchFn = cf.fetch;
  let backend: Backend;
  let fallback: string | undefined;
  const hasGpu = typeof navigator !== 'undefined' && 'gpu' in navigator;
  if (choice === 'cpu') backend = await cpuBackend();
  else if (!hasGpu) {
    if (choice === 'webgpu')
      throw new Error('this browser has no WebGPU (navigator.gpu is missing); choose the CPU backend');
    fallback = 'this browser has no WebGPU: running on the WebAssembly CPU backend';
    backend = await cpuBackend();
  } else {
    try {
      backend = gpu = await createWebGpuBackend();
    } catch (e) {
      if (choice === 'webgpu') throw e;
      fallback = `WebGPU could not start (${message(e)}): running on the WebAssembly CPU backend`;
      backend = await cpuBackend();
    }
  }
  model = await loadModelFromUrl(modelUrl, { backend, fetch: fetchFn });
  const i = model.info();
  const info: LoadedInfo = {
    url: modelUrl,
    backend: backend.name === 'webgpu' ? 'webgpu' : 'cpu',
    threads:
      typeof SharedArrayBuffer !== 'undefined' &&
      (self as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
    architecture: i.architecture,
    layers: i.layers,
    dModel: i.dModel,
    parameters: i.parameters,
    stateBytes: i.stateBytesPerSequence,
    loadMs: performance.now() - t0,
    downloadedBytes: cf.downloaded(),
  };
  if (fallback !== undefined) info.fallback = fallback;
  post({ type: 'loaded', info });
}

/** Resolves after pending messages have been handled (a MessageChannel round trip, not clamped like timers). */
function yieldToEvents(): Promise<void> {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      ch.port1.close();
      resolve();
    };
    ch.port2.postMessage(null);
  });
}

async function generate(prompt: string, o: SamplingOptions): Promise<void> {
  if (!model) throw new Error('no model is loaded');
  abort = new AbortController();
  const t0 = performance.now();
  let first = 0;
  let n = 0;
  let reason = 'length';
  let text = '';
  const promptIds = model.encode(prompt);
  const promptTokens = promptIds.length;
  const generated: number[] = [];
  const opts = {
    maxNewTokens: o.maxNewTokens,
    seed: o.seed,
    signal: abort.signal,
    ...(o.greedy ? { greedy: true } : { temperature: o.temperature, topK: o.topK, topP: o.topP, minP: o.minP }),
    repetitionPenalty: o.repetitionPenalty,
  };
  let lastYield = performance.now();
  for await (const c of model.generate(prompt, opts)) {
    // The CPU loop awaits only microtasks: give the event loop a turn now and then, or the Stop
    // message would wait in the queue until the whole generation is over.
    if (performance.now() - lastYield > 30) {
      await yieldToEvents();
      lastYield = performance.now();
    }
    if (c.token >= 0) {
      generated.push(c.token);
      n++;
      if (n === 1) first = performance.now();
    }
    text += c.text;
    if (c.finish) reason = c.finish;
    post({ type: 'chunk', text: c.text, tokens: n, promptTokens, ms: performance.now() - t0 });
  }
  const ms = performance.now() - t0;
  post({ type: 'done', tokens: n, ms, prefillMs: first ? first - t0 : ms, reason });
  // the tokens the model read and wrote (re-encoding the text could split it differently)
  await trace(prompt + text, [...promptIds, ...generated]);
}

/** Traces the text on the CPU backend (the GPU model's checkpoint again, from the browser cache). */
async function trace(text: string, tokenIds?: readonly number[]): Promise<void> {
  if (!model) return;
  const t0 = performance.now();
  try {
    if (!tracer) {
      const m = model;
      tracer =
        model.lm.backend.name === 'cpu'
          ? Promise.resolve(m)
          : cpuBackend().then((bk) => loadModelFromUrl(url, { backend: bk, fetch: fetchFn }));
    }
    const cpuModel = await tracer;
    const ids = (tokenIds ? [...tokenIds] : cpuModel.encode(text)).slice(-TRACE_MAX_TOKENS);
    const tr = await traceModel(
      cpuModel.lm,
      ids,
      ids.map((id) => cpuModel.decode([id])),
    );
    const transfer = tr.layers.flatMap((L) => [
      L.delta.buffer,
      L.memoryLength.buffer,
      L.stateNorm.buffer,
      L.bNorm.buffer,
      L.cNorm.buffer,
    ]);
    post({ type: 'trace', trace: tr, ms: performance.now() - t0 }, transfer as Transferable[]);
  } catch (e) {
    post({ type: 'error', during: 'trace', message: message(e) });
  }
}

/** The Selection view's example, on the CPU backend (models of 16k parameters: a GPU dispatch costs more). */
let selectionCpu: Promise<CpuBackend> | undefined;
async function selection(seed: number): Promise<void> {
  const t0 = performance.now();
  try {
    selectionCpu ??= cpuBackend();
    const base = new URL('./models/tasks/', self.location.href).href;
    const example = await runSelection(base, await selectionCpu, fetch, seed);
    post({ type: 'selection', example, ms: performance.now() - t0 });
  } catch (e) {
    post({ type: 'error', during: 'selection', message: message(e) });
  }
}

ctx.onmessage = (e) => {
  const m = e.data;
  if (m.type === 'selection') {
    void selection(m.seed);
    return;
  }
  if (m.type === 'stop') {
    abort?.abort();
    return;
  }
  if (m.type === 'trace') {
    void trace(m.text);
    return;
  }
  const during = m.type === 'load' ? 'load' : 'generate';
  const job = m.type === 'load' ? load(m.url, m.backend) : generate(m.prompt, m.options);
  job.catch((err: unknown) => post({ type: 'error', during, message: message(err) }));
};
