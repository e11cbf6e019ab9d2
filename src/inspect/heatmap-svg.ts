/**
 * One layer's Δ as an SVG heatmap (tokens across, channels down), for `mamba-ts inspect --out x.svg`:
 * a file a terminal user can open without the web app. Colour is log Δ between the layer's 1st and
 * 99th percentiles (Δ spans orders of magnitude; the extremes would wash the rest out).
 */
import type { ModelTrace } from './trace.js';

function esc(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] ?? c);
}

/** Viridis-like ramp through five stops, t in [0, 1]. */
export function ramp(t: number): [number, number, number] {
  const stops = [
    [68, 1, 84],
    [59, 82, 139],
    [33, 145, 140],
    [94, 201, 98],
    [253, 231, 37],
  ];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((k) => Math.round(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]))) as [
    number,
    number,
    number,
  ];
}

/** The 1st and 99th percentiles of log Δ: the colour scale's ends. */
export function logRange(delta: Float32Array): [number, number] {
  const logs = Float64Array.from(delta, (v) => Math.log(Math.max(v, 1e-12))).sort();
  const at = (q: number): number => logs[Math.min(logs.length - 1, Math.floor(q * logs.length))];
  const lo = at(0.01);
  const hi = at(0.99);
  return hi > lo ? [lo, hi] : [lo, lo + 1];
}

export function deltaHeatmapSvg(tr: ModelTrace, layer: number): string {
  const L = tr.layers[layer];
  const { length: l, channels: e } = tr;
  const cw = 14;
  const ch = 2;
  const left = 40;
  const top = 30;
  const bottom = 90;
  const width = left + l * cw + 10;
  const height = top + e * ch + bottom;
  const [lo, hi] = logRange(L.delta);
  const cells: string[] = [];
  for (let t = 0; t < l; t++)
    for (let c = 0; c < e; c++) {
      const [r, g, b] = ramp((Math.log(Math.max(L.delta[t * e + c], 1e-12)) - lo) / (hi - lo));
      cells.push(
        `<rect x="${left + t * cw}" y="${top + c * ch}" width="${cw}" height="${ch}" fill="rgb(${r},${g},${b})"/>`,
      );
    }
  const labels = tr.pieces.map(
    (p, t) =>
      `<text transform="translate(${left + t * cw + cw / 2},${top + e * ch + 6}) rotate(60)" font-size="10">${esc(JSON.stringify(p).slice(1, -1))}</text>`,
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="18" font-size="13">layer ${L.layer}: Δ per token (across) and ${tr.unit} (down, ${e}); ` +
      `log colour ${Math.exp(lo).toPrecision(2)} (dark) to ${Math.exp(hi).toPrecision(2)} (bright)</text>`,
    ...cells,
    ...labels,
    '</svg>',
  ].join('\n');
}
