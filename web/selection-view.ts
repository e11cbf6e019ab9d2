/**
 * The "Selection" view: one selective-copying example as tokens (data vs noise), both task models'
 * answers at the markers (right or wrong per token), and each model's Δ over the sequence: a heatmap
 * per model (tokens across, channels down) and the channel-mean Δ of both on one chart.
 */
import { ramp } from '../src/inspect/heatmap-svg.js';
import type { SelectionExample, SelectionModel } from './protocol.js';
import { plot } from './views.js';

export const MODEL_NAMES: Record<string, string> = {
  s6: 'S6 (selective: Δ, B, C from the token)',
  s4d: 'S4D (time-invariant: Δ, B, C fixed)',
};

/** What the page measured from one model's trace on the example (tests read it as mambaApp.selection). */
export interface SelectionStats {
  key: string;
  correct: number;
  total: number;
  /**
   * The typical Δ on the data tokens and on the noise of the data region, the chosen layer: geometric
   * means over those tokens and every channel (Δ spans orders of magnitude across channels; an
   * arithmetic mean would be a few large channels' value).
   */
  deltaData: number;
  deltaNoise: number;
  /** Channels whose Δ is on average more than 2× larger on data tokens than on noise, and less than half. */
  channelsOpening: number;
  channelsClosing: number;
  channels: number;
  /** Largest relative spread of one channel's Δ along the sequence: 0 for a time-invariant model. */
  maxChannelSpread: number;
}

/**
 * Per token, the geometric mean over channels of Δ relative to the channel's own geometric mean over
 * the sequence: 1 where the token leaves the gates at their usual level, above 1 where it opens them.
 */
function relativeGate(m: SelectionModel, layer: number): number[] {
  const { length: l, channels: e } = m.trace;
  const d = m.trace.layers[layer].delta;
  const logs = Float64Array.from(d, (v) => Math.log(Math.max(v, 1e-30)));
  for (let c = 0; c < e; c++) {
    let mean = 0;
    for (let t = 0; t < l; t++) mean += logs[t * e + c];
    mean /= l;
    for (let t = 0; t < l; t++) logs[t * e + c] -= mean;
  }
  const out: number[] = [];
  for (let t = 0; t < l; t++) {
    let s = 0;
    for (let c = 0; c < e; c++) s += logs[t * e + c];
    out.push(Math.exp(s / e));
  }
  return out;
}

export function selectionStats(ex: SelectionExample, m: SelectionModel, layer: number): SelectionStats {
  const marker = ex.vocabSize - 1;
  const { length: l, channels: e } = m.trace;
  const d = m.trace.layers[layer].delta;
  const isData = (t: number) => ex.tokens[t] !== 0 && ex.tokens[t] !== marker;
  const isNoise = (t: number) => ex.tokens[t] === 0;
  let ld = 0,
    nd = 0,
    ln = 0,
    nn = 0,
    opening = 0,
    closing = 0,
    spread = 0;
  for (let c = 0; c < e; c++) {
    let cd = 0,
      cdn = 0,
      cn = 0,
      cnn = 0,
      lo = Infinity,
      hi = -Infinity;
    for (let t = 0; t < l; t++) {
      const v = d[t * e + c];
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
      if (isData(t)) {
        cd += v;
        cdn++;
        ld += Math.log(Math.max(v, 1e-30));
        nd++;
      } else if (isNoise(t)) {
        cn += v;
        cnn++;
        ln += Math.log(Math.max(v, 1e-30));
        nn++;
      }
    }
    const ratio = cd / cdn / (cn / cnn);
    if (ratio > 2) opening++;
    if (ratio < 0.5) closing++;
    spread = Math.max(spread, (hi - lo) / Math.max(hi, 1e-30));
  }
  const want = ex.targets.filter((y) => y >= 0);
  return {
    key: m.key,
    correct: m.answers.filter((a, i) => a === want[i]).length,
    total: want.length,
    deltaData: nd ? Math.exp(ld / nd) : 0,
    deltaNoise: nn ? Math.exp(ln / nn) : 0,
    channelsOpening: opening,
    channelsClosing: closing,
    channels: e,
    maxChannelSpread: spread,
  };
}

/** The example as a strip of tokens: noise ·, data tokens by number, markers ▸. */
export function drawTokens(el: HTMLElement, ex: SelectionExample): void {
  const marker = ex.vocabSize - 1;
  el.replaceChildren(
    ...ex.tokens.map((tok, t) => {
      const s = document.createElement('span');
      s.className = tok === 0 ? 'tok noise' : tok === marker ? 'tok marker' : 'tok data';
      s.textContent = tok === 0 ? '·' : tok === marker ? '▸' : String(tok);
      s.title = `position ${t}: ${tok === 0 ? 'noise' : tok === marker ? 'marker (answer here)' : `data token ${tok}`}`;
      return s;
    }),
  );
}

/** Each model's answers at the markers against the data tokens, right or wrong per token. */
export function drawAnswers(el: HTMLElement, ex: SelectionExample, stats: SelectionStats[]): void {
  const want = ex.targets.filter((y) => y >= 0);
  const table = document.createElement('table');
  table.className = 'answers';
  const head = table.createTHead().insertRow();
  for (const h of ['', ...want.map((_, i) => `#${i + 1}`), 'this example', 'held-out accuracy'])
    head.appendChild(document.createElement('th')).textContent = h;
  const body = table.createTBody();
  const expected = body.insertRow();
  expected.insertCell().textContent = 'data tokens (to copy)';
  for (const y of want) expected.insertCell().textContent = String(y);
  expected.insertCell();
  expected.insertCell();
  ex.models.forEach((m, k) => {
    const row = body.insertRow();
    row.dataset.model = m.key;
    row.insertCell().textContent = MODEL_NAMES[m.key] ?? m.key;
    m.answers.forEach((a, i) => {
      const ok = a === want[i];
      const cell = row.insertCell();
      cell.className = ok ? 'right' : 'wrong';
      cell.textContent = `${a} ${ok ? '✓' : '✗'}`;
      cell.title = ok ? 'correct' : `wrong: expected ${want[i]}`;
    });
    row.insertCell().textContent = `${stats[k].correct} / ${stats[k].total}`;
    row.insertCell().textContent =
      `${(100 * m.heldOutAccuracy).toFixed(1)}% of ${m.heldOutExamples} × ${ex.count} tokens ` +
      `(${m.steps} steps, ${m.parameters} parameters)`;
  });
  el.replaceChildren(table);
}

/** One model's Δ for a layer: tokens across, channels down, colour log Δ on the model's own range. */
export function drawSelectionHeatmap(canvas: HTMLCanvasElement, m: SelectionModel, layer: number): number {
  const { length: l, channels: e } = m.trace;
  const d = m.trace.layers[layer].delta;
  canvas.width = l;
  canvas.height = e;
  const logs = Float64Array.from(d, (v) => Math.log(Math.max(v, 1e-12)));
  let lo = Infinity,
    hi = -Infinity;
  for (const v of logs) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(l, e);
  const colours = new Set<number>();
  for (let t = 0; t < l; t++)
    for (let c = 0; c < e; c++) {
      const [r, g, b] = ramp(hi > lo ? (logs[t * e + c] - lo) / (hi - lo) : 0.5);
      img.data.set([r, g, b, 255], (c * l + t) * 4);
      if (colours.size < 64) colours.add((r << 16) | (g << 8) | b);
    }
  ctx.putImageData(img, 0, 0);
  return colours.size;
}

/** Both models' gate per token (relativeGate: 1 = the channels' usual level), data tokens marked. */
export function drawSelectionChart(el: HTMLElement, ex: SelectionExample, layer: number): void {
  const xs = ex.tokens.map((_, t) => t);
  const marker = ex.vocabSize - 1;
  const series = ex.models.map((m) => relativeGate(m, layer));
  const top = Math.max(...series.flat());
  plot(
    el,
    {
      title: `Layer ${layer}: Δ per token relative to each channel's usual Δ (geometric mean over channels)`,
      scales: { x: { time: false }, y: { distr: 3 } },
      axes: [{ label: 'position' }, { label: 'Δ / channel mean (log)' }],
      series: [
        { label: 'position' },
        { label: 'S6', stroke: '#2a6f97', width: 2 },
        { label: 'S4D', stroke: '#c0392b', width: 2 },
        {
          label: 'data token',
          stroke: '#3a9d23',
          width: 0,
          points: { show: true, size: 8, fill: '#3a9d23' },
        },
      ],
    },
    [xs, ...series, ex.tokens.map((tok) => (tok !== 0 && tok !== marker ? top * 1.05 : null))],
  );
}
