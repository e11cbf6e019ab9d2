/**
 * The page: model picker, playground, and the "inside the model" views. All computing happens in
 * the worker (worker.ts); this file only sends requests, streams text into the page and draws. The
 * URL carries the model, prompt, sampling settings, backend, layer and view: opening it runs them.
 */
import type { ModelTrace } from '../src/inspect/trace.js';
import { HUB, modelFolderUrl } from './model-spec.js';
import { CACHE_NAME, type BackendChoice, type FromWorker, type LoadedInfo, type SamplingOptions } from './protocol.js';
import {
  CELL,
  type ContextCost,
  deltaAt,
  drawBC,
  drawCost,
  drawDelta,
  drawMemory,
  drawStateNorms,
  formatBytes,
  type HeatmapStats,
} from './views.js';
import type { SelectionExample } from './protocol.js';
import {
  drawAnswers,
  drawSelectionChart,
  drawSelectionHeatmap,
  drawTokens,
  MODEL_NAMES,
  selectionStats,
  type SelectionStats,
} from './selection-view.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const VIEWS = ['playground', 'delta', 'memory', 'cost', 'selection'] as const;
type View = (typeof VIEWS)[number];
const NUMERIC = ['max_new_tokens', 'temperature', 'top_k', 'top_p', 'min_p', 'repetition_penalty', 'seed'] as const;

/** What tests (and the curious, from the console) can read about the page's state. */
const app = {
  state: 'loading' as 'loading' | 'ready' | 'generating' | 'error',
  info: undefined as LoadedInfo | undefined,
  lastRun: undefined as undefined | { tokens: number; ms: number; tokensPerSecond: number; prefillMs: number },
  heatmap: undefined as HeatmapStats | undefined,
  traceLength: 0,
  traces: 0,
  maxLagMs: 0,
  error: '',
  /** The Selection view: the example's seed, the layer drawn, and what each model's trace shows. */
  selection: undefined as undefined | { seed: number; layer: number; models: SelectionStats[]; ms: number },
};
(globalThis as unknown as { mambaApp: typeof app }).mambaApp = app;

let worker: Worker;
let workerStarted = false;
let trace: ModelTrace | undefined;
let autoRun = false;
let defaultModel = new URL('./models/default/', location.href).href;

let hub = HUB;

/** `default`, `org/name[@revision]` (the Hugging Face hub) or a URL (relative to the page) -> the folder's URL. */
function modelUrl(spec: string): string {
  return modelFolderUrl(spec, defaultModel, location.href, hub);
}

function showError(m: string): void {
  const el = $('error');
  el.textContent = m;
  el.hidden = m === '';
  app.error = m;
}

function status(m: string): void {
  $('model-status').textContent = m;
}

function sampling(): SamplingOptions {
  const n = (id: string): number => Number(($(id) as HTMLInputElement).value);
  return {
    maxNewTokens: Math.max(1, Math.round(n('max_new_tokens'))),
    greedy: $<HTMLInputElement>('greedy').checked,
    temperature: n('temperature'),
    topK: Math.round(n('top_k')),
    topP: n('top_p'),
    minP: n('min_p'),
    repetitionPenalty: n('repetition_penalty'),
    seed: Math.round(n('seed')),
  };
}

// ---- the URL ----

function readUrl(): void {
  const q = new URLSearchParams(location.search);
  if (q.has('model')) $<HTMLInputElement>('model').value = q.get('model')!;
  if (q.has('backend')) $<HTMLSelectElement>('backend').value = q.get('backend')!;
  for (const k of NUMERIC) if (q.has(k)) $<HTMLInputElement>(k).value = q.get(k)!;
  if (q.has('greedy')) $<HTMLInputElement>('greedy').checked = q.get('greedy') !== '0' && q.get('greedy') !== 'false';
  if (q.has('prompt')) {
    $<HTMLTextAreaElement>('prompt').value = q.get('prompt')!;
    autoRun = true;
  }
  const v = q.get('view');
  selectView(VIEWS.includes(v as View) ? (v as View) : 'playground', false);
  if (q.has('layer')) pendingLayer = Number(q.get('layer'));
  if (q.has('example')) $<HTMLInputElement>('selection-seed').value = q.get('example')!;
}
let pendingLayer = 0;

function currentUrl(): string {
  const q = new URLSearchParams();
  q.set('model', $<HTMLInputElement>('model').value.trim() || 'default');
  q.set('prompt', $<HTMLTextAreaElement>('prompt').value);
  for (const k of NUMERIC) q.set(k, $<HTMLInputElement>(k).value);
  if ($<HTMLInputElement>('greedy').checked) q.set('greedy', '1');
  q.set('backend', $<HTMLSelectElement>('backend').value);
  q.set('view', currentView);
  q.set('layer', $<HTMLSelectElement>('layer').value || '0');
  if (currentView === 'selection') q.set('example', $<HTMLInputElement>('selection-seed').value);
  return `${location.origin}${location.pathname}?${q}`;
}

// ---- tabs ----

let currentView: View = 'playground';
function selectView(v: View, focus: boolean): void {
  currentView = v;
  for (const name of VIEWS) {
    const tab = $(`tab-${name}`);
    tab.setAttribute('aria-selected', String(name === v));
    tab.tabIndex = name === v ? 0 : -1;
    $(`view-${name}`).hidden = name !== v;
  }
  if (focus) $(`tab-${v}`).focus();
  drawViews();
}

function setupTabs(): void {
  for (const name of VIEWS) $(`tab-${name}`).addEventListener('click', () => selectView(name, false));
  $('tabs').addEventListener('keydown', (e) => {
    const i = VIEWS.indexOf(currentView);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: VIEWS.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    selectView(VIEWS[(next + VIEWS.length) % VIEWS.length], true);
  });
}

// ---- the worker ----

function startWorker(): void {
  worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  workerStarted = true;
  worker.onmessage = (e: MessageEvent<FromWorker>) => onWorker(e.data);
  worker.onerror = (e) => {
    app.state = 'error';
    showError(`The model's worker failed: ${e.message || 'it could not start (see the browser console)'}`);
  };
}

function load(): void {
  const spec = $<HTMLInputElement>('model').value;
  const url = modelUrl(spec);
  app.state = 'loading';
  showError('');
  $<HTMLButtonElement>('generate').disabled = true;
  const bar = $<HTMLProgressElement>('progress');
  bar.hidden = false;
  bar.removeAttribute('value');
  status(`Loading ${spec || 'default'} (${url})…`);
  worker.postMessage({ type: 'load', url, backend: $<HTMLSelectElement>('backend').value as BackendChoice });
}

let promptShown = '';
let genText = '';
let promptTokens = 0;

function generate(): void {
  if (app.state !== 'ready') return;
  app.state = 'generating';
  showError('');
  promptShown = $<HTMLTextAreaElement>('prompt').value;
  genText = '';
  renderOutput();
  $('speed').textContent = 'reading the prompt…';
  $<HTMLButtonElement>('generate').disabled = true;
  $<HTMLButtonElement>('stop').disabled = false;
  app.maxLagMs = 0;
  history.replaceState(null, '', currentUrl());
  worker.postMessage({ type: 'generate', prompt: promptShown, options: sampling() });
}

function renderOutput(): void {
  const out = $('output');
  const p = document.createElement('span');
  p.className = 'prompt';
  p.textContent = promptShown;
  out.replaceChildren(p, document.createTextNode(genText));
}

function onWorker(m: FromWorker): void {
  switch (m.type) {
    case 'progress': {
      const bar = $<HTMLProgressElement>('progress');
      bar.max = m.total || 1;
      bar.value = m.loaded;
      status(`Downloading ${m.file}: ${formatBytes(m.loaded)} of ${formatBytes(m.total)}`);
      break;
    }
    case 'loaded': {
      const i = m.info;
      app.info = i;
      app.state = 'ready';
      $('progress').hidden = true;
      $<HTMLButtonElement>('generate').disabled = false;
      const where = i.backend === 'webgpu' ? 'WebGPU' : `WebAssembly CPU${i.threads ? ' (threads)' : ''}`;
      status(
        `${i.architecture}, ${i.layers} layers × d_model ${i.dModel}, ${(i.parameters / 1e6).toFixed(2)} M parameters, ` +
          `on ${where}; loaded in ${(i.loadMs / 1000).toFixed(2)} s ` +
          (i.downloadedBytes > 0 ? `(${formatBytes(i.downloadedBytes)} downloaded)` : '(from the browser cache)'),
      );
      if (i.fallback) showError(i.fallback);
      const layers = Array.from({ length: i.layers }, (_, k) => `<option value="${k}">${k}</option>`).join('');
      $('colour').addEventListener('change', () => drawViews());
      for (const id of ['layer', 'layer2']) {
        $(id).innerHTML = layers;
        $<HTMLSelectElement>(id).value = String(Math.min(pendingLayer, i.layers - 1));
      }
      if (autoRun) {
        autoRun = false;
        generate();
      } else {
        // the views show the prompt's trace until something is generated
        worker.postMessage({ type: 'trace', text: $<HTMLTextAreaElement>('prompt').value });
      }
      break;
    }
    case 'chunk':
      genText += m.text;
      promptTokens = m.promptTokens;
      renderOutput();
      $('speed').textContent = `${m.tokens} tokens, ${((m.tokens / m.ms) * 1000).toFixed(1)} tokens/s`;
      compareMemory(promptTokens + m.tokens);
      break;
    case 'done': {
      const decodeMs = Math.max(1, m.ms - m.prefillMs);
      const tps = m.tokens > 1 ? ((m.tokens - 1) / decodeMs) * 1000 : 0;
      app.lastRun = { tokens: m.tokens, ms: m.ms, tokensPerSecond: tps, prefillMs: m.prefillMs };
      app.state = 'ready';
      $('speed').textContent =
        `${m.tokens} tokens in ${(m.ms / 1000).toFixed(2)} s: ${tps.toFixed(1)} tokens/s after a ` +
        `${m.prefillMs.toFixed(0)} ms prompt (${m.reason})`;
      $<HTMLButtonElement>('generate').disabled = false;
      $<HTMLButtonElement>('stop').disabled = true;
      break;
    }
    case 'trace':
      trace = m.trace;
      showTracedLayers(trace);
      app.traceLength = trace.length;
      app.traces++;
      drawViews();
      break;
    case 'selection':
      selection = m.example;
      selectionMs = m.ms;
      $<HTMLButtonElement>('selection-run').disabled = false;
      $('selection-status').textContent = `ran both models in ${(m.ms / 1000).toFixed(2)} s (WebAssembly CPU)`;
      drawViews();
      break;
    case 'error':
      if (m.during === 'selection') {
        $<HTMLButtonElement>('selection-run').disabled = false;
        $('selection-status').textContent = '';
        showError(`Could not run the task models: ${m.message}`);
      } else if (m.during === 'load') {
        app.state = 'error';
        $('progress').hidden = true;
        status('No model loaded.');
        showError(`Could not load the model: ${m.message}`);
      } else if (m.during === 'generate') {
        app.state = 'ready';
        $<HTMLButtonElement>('generate').disabled = false;
        $<HTMLButtonElement>('stop').disabled = true;
        showError(`Generation failed: ${m.message}`);
      } else showError(`Could not trace the text: ${m.message}`);
      break;
  }
}

/** The state's size next to a same-width, same-depth Transformer's KV cache for `tokens` tokens. */
function compareMemory(tokens: number): void {
  const i = app.info;
  if (!i) return;
  const kv = 2 * i.layers * i.dModel * 4 * tokens; // K and V, f32 like the state, per layer and token
  const max = Math.max(kv, i.stateBytes);
  const el = $('memory-compare');
  el.innerHTML = '';
  const grid = document.createElement('div');
  grid.className = 'bars';
  for (const [name, bytes, cls] of [
    ['Mamba state (any length)', i.stateBytes, 'bar'],
    [`KV cache, ${tokens} tokens`, kv, 'bar kv'],
  ] as const) {
    const label = document.createElement('span');
    label.textContent = name;
    const bar = document.createElement('div');
    bar.className = cls;
    bar.style.width = `${(100 * bytes) / max}%`;
    const v = document.createElement('span');
    v.textContent = formatBytes(bytes);
    grid.append(label, bar, v);
  }
  const note = document.createElement('p');
  note.textContent =
    `A Transformer of the same width and depth (${i.layers} layers × d_model ${i.dModel}) keeps a key and a value ` +
    `per layer for every token: 2 × ${i.layers} × ${i.dModel} × 4 bytes = ${formatBytes(2 * i.layers * i.dModel * 4)} ` +
    `per token, growing with the text. Mamba's state stays ${formatBytes(i.stateBytes)}.`;
  el.append(grid, note);
}

// ---- the views ----

let cost: ContextCost | undefined;

/**
 * The layer pickers list the traced layers, by the block's index in the model: all of them for a
 * Mamba model, the Mamba-2 blocks of a hybrid (its attention and MLP blocks have no Δ).
 */
function showTracedLayers(tr: ModelTrace): void {
  const options = tr.layers.map((L, k) => `<option value="${k}">${L.layer}</option>`).join('');
  for (const id of ['layer', 'layer2']) {
    const sel = $<HTMLSelectElement>(id);
    if (sel.innerHTML === options) continue;
    const keep = Number(sel.value || 0);
    sel.innerHTML = options;
    sel.value = String(Math.min(keep, tr.layers.length - 1));
  }
}

let selection: SelectionExample | undefined;
let selectionMs = 0;
let selectionAsked = -1;

/** Asks the worker for the example of the seed in the box (the models run there). */
function runSelection(): void {
  if (!workerStarted) return; // before start(): asked again once the worker runs
  const seed = Math.max(0, Math.round(Number($<HTMLInputElement>('selection-seed').value) || 0));
  selectionAsked = seed;
  $<HTMLButtonElement>('selection-run').disabled = true;
  $('selection-status').textContent = 'running both models…';
  history.replaceState(null, '', currentUrl());
  worker.postMessage({ type: 'selection', seed });
}

function drawSelection(): void {
  if (!selection) {
    if (selectionAsked < 0) runSelection();
    return;
  }
  const ex = selection;
  const layer = Math.min(
    Number($<HTMLSelectElement>('selection-layer').value || 0),
    ex.models[0].trace.layers.length - 1,
  );
  const stats = ex.models.map((m) => selectionStats(ex, m, layer));
  app.selection = { seed: ex.seed, layer, models: stats, ms: selectionMs };
  drawTokens($('selection-tokens'), ex);
  drawAnswers($('selection-answers'), ex, stats);
  drawSelectionChart($('selection-chart'), ex, layer);
  for (const m of ex.models) drawSelectionHeatmap($<HTMLCanvasElement>(`selection-${m.key}`), m, layer);
  $('selection-facts').textContent =
    `Measured on this example, layer ${layer} (geometric means over the channels): ` +
    stats
      .map(
        (s) =>
          `${MODEL_NAMES[s.key] ?? s.key}: typical Δ ${s.deltaData.toPrecision(3)} on data tokens, ` +
          `${s.deltaNoise.toPrecision(3)} on noise (×${(s.deltaData / s.deltaNoise).toFixed(2)}); ` +
          `${s.channelsOpening} of ${s.channels} channels open more than 2× wider on data tokens, ` +
          `${s.channelsClosing} less than half as wide`,
      )
      .join('. ') +
    '.';
}

function drawViews(): void {
  if (currentView === 'selection') {
    drawSelection();
    return;
  }
  if (currentView === 'cost') {
    if (cost) drawCost($('cost-chart'), $('bytes-chart'), cost);
    return;
  }
  if (!trace) return;
  const layer = Math.min(Number($<HTMLSelectElement>('layer').value || 0), trace.layers.length - 1);
  if (currentView === 'delta') {
    const mode = $<HTMLSelectElement>('colour').value === 'absolute' ? 'absolute' : 'relative';
    app.heatmap = drawDelta($<HTMLCanvasElement>('delta-canvas'), $('tokens'), trace, layer, mode);
    const h = app.heatmap;
    $('delta-scale').textContent =
      `${trace.length} tokens × ${trace.channels} ${trace.unit}s${trace.unit === 'head' ? ' (Mamba-2: one Δ per head)' : ''}; Δ from ${h.min.toPrecision(2)} to ${h.max.toPrecision(2)} ` +
      `(mean ${h.mean.toPrecision(2)})`;
  } else if (currentView === 'memory') {
    const l2 = Math.min(Number($<HTMLSelectElement>('layer2').value || 0), trace.layers.length - 1);
    drawMemory($('memory-chart'), trace, l2);
    drawStateNorms($('state-chart'), trace);
    drawBC($('bc-chart'), trace, l2);
  }
}

function setup(): void {
  setupTabs();
  $('model-form').addEventListener('submit', (e) => {
    e.preventDefault();
    load();
  });
  $('gen-form').addEventListener('submit', (e) => {
    e.preventDefault();
    generate();
  });
  $('stop').addEventListener('click', () => worker.postMessage({ type: 'stop' }));
  $('clear-cache').addEventListener('click', async () => {
    const gone = typeof caches !== 'undefined' && (await caches.delete(CACHE_NAME));
    status(gone ? 'Cleared the cached model files: the next load downloads them again.' : 'Nothing was cached.');
  });
  $('share').addEventListener('click', async () => {
    const u = currentUrl();
    history.replaceState(null, '', u);
    try {
      await navigator.clipboard.writeText(u);
      $('speed').textContent = 'Link copied.';
    } catch {
      $('speed').textContent = `Link: ${u}`;
    }
  });
  $('colour').addEventListener('change', () => drawViews());
  $('selection-form').addEventListener('submit', (e) => {
    e.preventDefault();
    runSelection();
  });
  $('selection-new').addEventListener('click', () => {
    const box = $<HTMLInputElement>('selection-seed');
    box.value = String((Number(box.value) || 0) + 1);
    runSelection();
  });
  $('selection-layer').addEventListener('change', () => drawViews());
  for (const id of ['layer', 'layer2'])
    $(id).addEventListener('change', (e) => {
      const v = (e.target as HTMLSelectElement).value;
      $<HTMLSelectElement>('layer').value = v;
      $<HTMLSelectElement>('layer2').value = v;
      drawViews();
    });
  const canvas = $<HTMLCanvasElement>('delta-canvas');
  canvas.addEventListener('mousemove', (e) => {
    if (!trace) return;
    const r = canvas.getBoundingClientRect();
    const t = Math.floor((e.clientX - r.left) / CELL);
    const c = Math.floor(((e.clientY - r.top) / r.height) * trace.channels);
    if (t >= 0 && t < trace.length && c >= 0 && c < trace.channels)
      $('delta-hover').textContent = deltaAt(trace, Number($<HTMLSelectElement>('layer').value), t, c);
  });
  // how long the page's own thread is blocked: a timer that should fire every 50 ms
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    if (app.state === 'generating') app.maxLagMs = Math.max(app.maxLagMs, now - last - 50);
    last = now;
  }, 50);
  window.addEventListener('resize', () => drawViews());
}

async function start(): Promise<void> {
  setup();
  readUrl();
  try {
    const cfg = (await (await fetch('./app-config.json')).json()) as { defaultModel?: string; hubEndpoint?: string };
    if (cfg.defaultModel) defaultModel = new URL(cfg.defaultModel, location.href).href;
    if (cfg.hubEndpoint) hub = cfg.hubEndpoint; // HF_ENDPOINT of `mamba-ts web`: a mirror
  } catch {
    /* no app-config.json: a static build, the shipped model */
  }
  fetch('./context-cost.json')
    .then((r) => r.json() as Promise<ContextCost>)
    .then((c) => {
      cost = c;
      $('cost-source').textContent =
        `Source: context-cost.json (${c.machine?.cpu ?? 'CPU'}, ${c.machine?.cores ?? '?'} cores, ${c.date?.slice(0, 10) ?? ''}).`;
      drawViews();
    })
    .catch(() => ($('cost-source').textContent = 'The measurements (context-cost.json) could not be loaded.'));
  startWorker();
  load();
  if (currentView === 'selection') drawViews();
}

void start();
