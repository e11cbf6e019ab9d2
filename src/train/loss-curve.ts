/**
 * The loss curve of a run as a self-contained SVG (no dependencies): training loss per step (thin,
 * light), its exponential moving average (α = 0.1), and validation loss at each evaluation (points and
 * a line), over steps, with axes, "nice" ticks and a legend.
 */
export interface CurvePoint {
  step: number;
  loss: number;
}

export interface LossCurveOptions {
  title: string;
  train: readonly CurvePoint[];
  val: readonly CurvePoint[];
  width?: number;
  height?: number;
}

export function lossCurveSvg(o: LossCurveOptions): string {
  const W = o.width ?? 760,
    H = o.height ?? 420;
  const m = { left: 64, right: 24, top: 48, bottom: 52 };
  const pw = W - m.left - m.right,
    ph = H - m.top - m.bottom;
  const train = o.train.filter((p) => Number.isFinite(p.loss));
  const val = o.val.filter((p) => Number.isFinite(p.loss));
  const ema: CurvePoint[] = [];
  let e: number | undefined;
  for (const p of train) {
    e = e === undefined ? p.loss : e + 0.1 * (p.loss - e);
    ema.push({ step: p.step, loss: e });
  }
  const all = [...train, ...val];
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${esc(o.title)}</text>`,
  ];
  if (all.length === 0) {
    parts.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no steps yet</text>`, '</svg>');
    return parts.join('\n') + '\n';
  }
  const x0 = Math.min(...all.map((p) => p.step)),
    x1 = Math.max(x0 + 1, ...all.map((p) => p.step));
  // The y range covers the smoothed and validation curves (the first raw losses would squash the rest).
  const ys = [...ema, ...val].map((p) => p.loss);
  const [y0, y1] = niceRange(Math.min(...ys), Math.max(...ys));
  const X = (s: number): number => m.left + ((s - x0) / (x1 - x0)) * pw;
  const Y = (v: number): number => m.top + (1 - (Math.min(Math.max(v, y0), y1) - y0) / (y1 - y0)) * ph;
  for (const t of ticks(y0, y1, 6)) {
    parts.push(
      `<line x1="${m.left}" x2="${m.left + pw}" y1="${Y(t).toFixed(1)}" y2="${Y(t).toFixed(1)}" stroke="#e4e4e4"/>`,
    );
    parts.push(`<text x="${m.left - 8}" y="${(Y(t) + 4).toFixed(1)}" text-anchor="end">${fmt(t)}</text>`);
  }
  for (const t of ticks(x0, x1, 8)) {
    parts.push(
      `<line x1="${X(t).toFixed(1)}" x2="${X(t).toFixed(1)}" y1="${m.top + ph}" y2="${m.top + ph + 5}" stroke="#444"/>`,
    );
    parts.push(`<text x="${X(t).toFixed(1)}" y="${m.top + ph + 19}" text-anchor="middle">${fmt(t)}</text>`);
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${H - 12}" text-anchor="middle">step</text>`);
  parts.push(
    `<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">loss (nats per token)</text>`,
  );
  const path = (pts: readonly CurvePoint[]): string =>
    pts.map((p, i) => `${i ? 'L' : 'M'}${X(p.step).toFixed(1)} ${Y(p.loss).toFixed(1)}`).join(' ');
  if (train.length) parts.push(`<path d="${path(train)}" fill="none" stroke="#9ecae1" stroke-width="1"/>`);
  if (ema.length) parts.push(`<path d="${path(ema)}" fill="none" stroke="#08519c" stroke-width="2"/>`);
  if (val.length) {
    parts.push(`<path d="${path(val)}" fill="none" stroke="#e6550d" stroke-width="1.5"/>`);
    for (const p of val)
      parts.push(`<circle cx="${X(p.step).toFixed(1)}" cy="${Y(p.loss).toFixed(1)}" r="3" fill="#e6550d"/>`);
  }
  const lx = m.left + pw - 170,
    ly = m.top + 12;
  parts.push(`<rect x="${lx - 8}" y="${ly - 12}" width="170" height="58" fill="white" stroke="#ccc"/>`);
  const legend: [string, string, number][] = [
    ['#9ecae1', 'training loss', 1],
    ['#08519c', 'training loss (EMA 0.1)', 2],
    ['#e6550d', 'validation loss', 2],
  ];
  legend.forEach(([color, label, w], i) => {
    parts.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="${ly + i * 17}" y2="${ly + i * 17}" stroke="${color}" stroke-width="${w}"/>`,
    );
    parts.push(`<text x="${lx + 30}" y="${ly + i * 17 + 4}">${label}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** A range containing [lo, hi] with round ends (and some height when lo == hi). */
function niceRange(lo: number, hi: number): [number, number] {
  if (hi - lo < 1e-9) {
    lo -= 0.5;
    hi += 0.5;
  }
  const step = niceStep((hi - lo) / 6);
  return [Math.floor(lo / step) * step, Math.ceil(hi / step) * step];
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

function ticks(lo: number, hi: number, n: number): number[] {
  const step = niceStep((hi - lo) / n);
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.round(t / step) * step);
  return out;
}

function fmt(v: number): string {
  return Math.abs(v) >= 1000 ? v.toFixed(0) : String(Number(v.toPrecision(4)));
}
