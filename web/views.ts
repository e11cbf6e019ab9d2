/**
 * The "inside the model" views: the Δ heatmap (canvas), memory length, state and B/C norms, and the
 * context-cost charts (uPlot). Each takes the worker's trace or the committed benchmark JSON.
 */
import uPlot from 'uplot';
import { ramp } from '../src/inspect/heatmap-svg.js';
import type { ModelTrace } from '../src/inspect/trace.js';

/** Pixels per token column in the heatmap. */
export const CELL = 14;

export interface HeatmapStats {
  min: number;
  max: number;
  mean: number;
  /** Distinct colours drawn: a blank or uniform canvas has 1. */
  colours: number;
}

/**
 * Draws one layer's Δ: a column per token, a row per channel; tints the token strip by the column's
 * mean. Colour: log Δ ('absolute'), or log Δ minus the channel's mean over the text ('relative'),
 * which shows per token where each channel opens its gate more or less than it usually does (the
 * channels' own levels differ more than a channel changes along the text, and would hide it).
 */
export function drawDelta(
  canvas: HTMLCanvasElement,
  strip: HTMLElement,
  tr: ModelTrace,
  layer: number,
  mode: 'absolute' | 'relative' = 'relative',
): HeatmapStats {
  const L = tr.layers[layer];
  const { length: l, channels: e } = tr;
  canvas.width = l;
  canvas.height = e;
  canvas.style.width = `${l * CELL}px`;
  const val = Float64Array.from(L.delta, (v) => Math.log(Math.max(v, 1e-12))); // (l, e)
  if (mode === 'relative')
    for (let c = 0; c < e; c++) {
      let m = 0;
      for (let t = 0; t < l; t++) m += val[t * e + c];
      for (let t = 0; t < l; t++) val[t * e + c] -= m / l;
    }
  const sorted = Float64Array.from(val).sort();
  const lo = quantile(sorted, 0.01);
  const hi = Math.max(quantile(sorted, 0.99), lo + 1e-6);
  const colour = (x: number) => ramp((x - lo) / (hi - lo));
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(l, e);
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  const colours = new Set<number>();
  for (let t = 0; t < l; t++)
    for (let c = 0; c < e; c++) {
      const v = L.delta[t * e + c];
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
      const [r, g, b] = colour(val[t * e + c]);
      img.data.set([r, g, b, 255], (c * l + t) * 4);
      if (colours.size < 64) colours.add((r << 16) | (g << 8) | b);
    }
  ctx.putImageData(img, 0, 0);
  strip.replaceChildren(
    ...tr.pieces.map((p, t) => {
      const s = document.createElement('span');
      let m = 0;
      for (let c = 0; c < e; c++) m += val[t * e + c];
      const [r, g, b] = colour(m / e);
      s.style.background = `rgba(${r},${g},${b},0.6)`;
      s.textContent = p;
      s.title = `token ${t}: ${JSON.stringify(p)}, mean ${mode === 'relative' ? 'relative ' : ''}log Δ ${(m / e).toFixed(2)}`;
      return s;
    }),
  );
  strip.style.setProperty('--cell', `${CELL}px`);
  return { min, max, mean: sum / (l * e), colours: colours.size };
}

/** The text under the pointer in the heatmap. */
export function deltaAt(tr: ModelTrace, layer: number, t: number, c: number): string {
  const v = tr.layers[layer].delta[t * tr.channels + c];
  return `token ${t} ${JSON.stringify(tr.pieces[t] ?? '')}, ${tr.unit} ${c}: Δ = ${v.toPrecision(3)}`;
}

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const charts = new Map<HTMLElement, uPlot>();

export function plot(el: HTMLElement, opts: Omit<uPlot.Options, 'width' | 'height'>, data: uPlot.AlignedData): uPlot {
  charts.get(el)?.destroy();
  const width = Math.max(300, Math.min(el.clientWidth || 900, 1000));
  const u = new uPlot({ ...opts, width, height: 260 }, data, el);
  charts.set(el, u);
  return u;
}

/** Memory length (median, 90th percentile over channels) per token, against the text so far. */
export function drawMemory(el: HTMLElement, tr: ModelTrace, layer: number): void {
  const L = tr.layers[layer];
  const e = tr.channels;
  const xs = Array.from({ length: tr.length }, (_, t) => t);
  const med: number[] = [];
  const p90: number[] = [];
  const p10: number[] = [];
  for (let t = 0; t < tr.length; t++) {
    const row = Float64Array.from(L.memoryLength.subarray(t * e, (t + 1) * e)).sort();
    med.push(quantile(row, 0.5));
    p90.push(quantile(row, 0.9));
    p10.push(quantile(row, 0.1));
  }
  plot(
    el,
    {
      title: `Layer ${L.layer}: tokens remembered (weight ≥ 1/e)`,
      scales: { x: { time: false } },
      axes: [{ label: 'token' }, { label: 'tokens back' }],
      series: [
        { label: 'token' },
        { label: 'whole text so far', stroke: '#999', dash: [4, 4] },
        { label: `median ${tr.unit}`, stroke: '#2a6f97', width: 2 },
        { label: '90th percentile', stroke: '#e07a1f', width: 2 },
        { label: '10th percentile', stroke: '#3a9d23', width: 2 },
      ],
    },
    [xs, xs.map((t) => t + 1), med, p90, p10],
  );
}

const LAYER_COLOURS = ['#2a6f97', '#e07a1f', '#3a9d23', '#c0392b', '#8e44ad', '#7f8c8d', '#16a085', '#d35400'];

/** ‖h_t‖ per layer over the text. */
export function drawStateNorms(el: HTMLElement, tr: ModelTrace): void {
  const xs = Array.from({ length: tr.length }, (_, t) => t);
  plot(
    el,
    {
      title: 'State norm ‖h_t‖ per layer (the state itself keeps its size)',
      scales: { x: { time: false } },
      axes: [{ label: 'token' }, { label: '‖h‖' }],
      series: [
        { label: 'token' },
        ...tr.layers.map((L, i) => ({ label: `layer ${L.layer}`, stroke: LAYER_COLOURS[i % LAYER_COLOURS.length] })),
      ],
    },
    [xs, ...tr.layers.map((L) => Array.from(L.stateNorm))],
  );
}

export function drawBC(el: HTMLElement, tr: ModelTrace, layer: number): void {
  const L = tr.layers[layer];
  const xs = Array.from({ length: tr.length }, (_, t) => t);
  plot(
    el,
    {
      title: `Layer ${L.layer}: ‖B_t‖ (write) and ‖C_t‖ (read)`,
      scales: { x: { time: false } },
      axes: [{ label: 'token' }, {}],
      series: [{ label: 'token' }, { label: '‖B‖', stroke: '#3a9d23' }, { label: '‖C‖', stroke: '#8e44ad' }],
    },
    [xs, Array.from(L.bNorm), Array.from(L.cNorm)],
  );
}

export interface ContextCost {
  config: { dModel: number; layers: number };
  machine?: { cpu?: string; cores?: number };
  date?: string;
  decode: Record<'mamba' | 'attention', { context: number; msPerToken: number; stateBytes: number }[]>;
}

/** ms per token and state/KV bytes against the context, log-log, from bench/results/context-cost.json. */
export function drawCost(costEl: HTMLElement, bytesEl: HTMLElement, c: ContextCost): void {
  const xs = c.decode.mamba.map((r) => r.context);
  const at = (k: 'mamba' | 'attention', f: 'msPerToken' | 'stateBytes') =>
    xs.map((x) => c.decode[k].find((r) => r.context === x)?.[f] ?? null);
  const logx: uPlot.Scale = { time: false, distr: 3, log: 2 };
  plot(
    costEl,
    {
      title: 'Time per new token vs context already read',
      scales: { x: logx, y: { distr: 3 } },
      axes: [{ label: 'context (tokens)' }, { label: 'ms per token' }],
      series: [
        { label: 'context' },
        { label: 'Mamba', stroke: '#2a6f97', width: 2 },
        { label: 'attention', stroke: '#c0392b', width: 2 },
      ],
    },
    [xs, at('mamba', 'msPerToken'), at('attention', 'msPerToken')],
  );
  plot(
    bytesEl,
    {
      title: 'Memory carrying the context: Mamba state vs KV cache',
      scales: { x: logx, y: { distr: 3 } },
      axes: [
        { label: 'context (tokens)' },
        // label the powers of ten only: a log axis over 4 decades has too many ticks to name them all
        {
          label: 'bytes',
          size: 70,
          values: (_u, vs) =>
            vs.map((v) => (Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-6 ? formatBytes(v) : '')),
        },
      ],
      series: [
        { label: 'context' },
        { label: 'Mamba state', stroke: '#2a6f97', width: 2 },
        { label: 'KV cache', stroke: '#c0392b', width: 2 },
      ],
    },
    [xs, at('mamba', 'stateBytes'), at('attention', 'stateBytes')],
  );
}

export function formatBytes(b: number): string {
  if (b < 1024) return `${b} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = b / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}
