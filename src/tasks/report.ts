import type { TaskRunResult } from './results.js';
import { MIXER_DESCRIPTIONS, type MixerName } from './models.js';

/**
 * `mamba-ts tasks report`: task runs -> markdown tables in the shape of the Mamba paper's Table 1
 * (selective copying: accuracy per architecture and layer) and Table 2 (induction heads: accuracy per
 * test length), an MQAR accuracy-vs-width table, and SVG line plots (written by hand: no plotting
 * dependency). The papers' numbers sit beside ours where they exist.
 */

/** Table 1 of the Mamba paper, selective copying accuracy (%), by our mixer names. */
export const PAPER_TABLE1: Partial<Record<MixerName, { arch: string; layer: string; acc: number }>> = {
  s4d: { arch: 'No gate', layer: 'S4', acc: 18.3 },
  s6: { arch: 'No gate', layer: 'S6', acc: 97.0 },
  h3: { arch: 'H3', layer: 'S4', acc: 57.0 },
  hyena: { arch: 'Hyena', layer: 'Hyena', acc: 30.1 },
  'mamba-s4d': { arch: 'Mamba', layer: 'S4', acc: 56.4 },
  'mamba-hyena': { arch: 'Mamba', layer: 'Hyena', acc: 28.4 },
  mamba: { arch: 'Mamba', layer: 'S6', acc: 99.8 },
};

const ORDER: MixerName[] = [
  's4d',
  's4d-real',
  's6',
  'h3',
  'hyena',
  'mamba-s4d',
  'mamba-hyena',
  'mamba',
  'mamba2',
  'mamba3',
  'mamba3-mimo',
  'attention',
];
const byMixer = (a: TaskRunResult, b: TaskRunResult): number =>
  ORDER.indexOf(a.mixer) - ORDER.indexOf(b.mixer) || a.model.dModel - b.model.dModel;
const pct = (x: number): string => (100 * x).toFixed(1);

export interface Report {
  markdown: string;
  plots: { name: string; svg: string }[];
}

/** `extra`: sections made elsewhere (src/tasks/report-state.ts), placed before the list of runs. */
export function buildReport(
  runs: TaskRunResult[],
  extra: { markdown: string[]; plots: { name: string; svg: string }[] }[] = [],
): Report {
  const md: string[] = [];
  const plots: { name: string; svg: string }[] = [];
  const sc = runs.filter((r) => r.task === 'selective-copying').sort(byMixer);
  const scGroups = new Map<string, TaskRunResult[]>();
  for (const r of sc) {
    const k = `${r.settings.seqLen}/${r.settings.count}/${r.model.dModel}`;
    scGroups.set(k, [...(scGroups.get(k) ?? []), r]);
  }
  for (const [k, rs] of [...scGroups].sort((a, b) => Number(b[0].split('/')[0]) - Number(a[0].split('/')[0]))) {
    const [L, M, d] = k.split('/');
    md.push(
      `### Selective copying, length ${L}, ${M} tokens to memorise, d_model ${d} (the shape of Mamba Table 1)`,
      '',
    );
    md.push(
      '| architecture | layer | mixer | params | steps | accuracy (%) | sequences exact (%) | paper (%) | wall |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of rs) {
      const p = PAPER_TABLE1[r.mixer];
      md.push(
        `| ${p?.arch ?? '-'} | ${p?.layer ?? r.mixer} | \`${r.mixer}\` | ${r.parameters} | ${r.log.steps} | **${pct(r.accuracy.token)}** | ${pct(r.accuracy.sequence)} | ${p ? p.acc.toFixed(1) : '-'} | ${fmtTime(r.wallSeconds)} |`,
      );
    }
    md.push('');
    plots.push({
      name: `selective-copying-L${L}-n${M}-d${d}`,
      svg: barPlot(
        `Selective copying (L ${L}, ${M} tokens, d ${d}): accuracy by mixer`,
        rs.map((r) => ({ label: r.mixer, value: 100 * r.accuracy.token, paper: PAPER_TABLE1[r.mixer]?.acc })),
        'accuracy (%)',
      ),
    });
  }
  const ih = runs.filter((r) => r.task === 'induction-heads').sort(byMixer);
  if (ih.length) {
    const lengths = [...new Set(ih.flatMap((r) => r.lengths.map((x) => x.length)))].sort((a, b) => a - b);
    md.push('### Induction heads (the shape of Mamba Table 2): accuracy (%) at the last position by test length', '');
    md.push(
      `| mixer | params | trained at | steps | ${lengths.map((l) => `2^${Math.log2(l)}`).join(' | ')} |`,
      `| --- | --- | --- | --- | ${lengths.map(() => '---').join(' | ')} |`,
    );
    for (const r of ih) {
      const cells = lengths.map((l) => {
        const x = r.lengths.find((y) => y.length === l);
        return x ? (l === r.settings.seqLen ? `*${pct(x.accuracy)}*` : pct(x.accuracy)) : '-';
      });
      md.push(`| \`${r.mixer}\` | ${r.parameters} | ${r.settings.seqLen} | ${r.log.steps} | ${cells.join(' | ')} |`);
    }
    md.push('', 'Italic: the training length. "-": not run (time, or the memory of the parallel form).', '');
    plots.push({
      name: 'induction-heads',
      svg: linePlot(
        'Induction heads: accuracy vs test length',
        ih.map((r) => ({
          label: r.mixer,
          points: r.lengths.map((x) => [Math.log2(x.length), 100 * x.accuracy] as [number, number]),
        })),
        'log2(sequence length)',
        'accuracy (%)',
        ih[0] ? Math.log2(ih[0].settings.seqLen) : undefined,
      ),
    });
  }
  const mq = runs.filter((r) => r.task === 'mqar').sort(byMixer);
  if (mq.length) {
    const groups = new Map<string, TaskRunResult[]>();
    for (const r of mq) {
      const k = `${r.settings.seqLen}/${r.settings.count}/${r.settings.vocabSize}`;
      groups.set(k, [...(groups.get(k) ?? []), r]);
    }
    for (const [k, rs] of groups) {
      if (new Set(rs.map((r) => r.model.dState)).size > 1) continue; // by state size: report-state.ts
      const [L, D, V] = k.split('/');
      const widths = [...new Set(rs.map((r) => r.model.dModel))].sort((a, b) => a - b);
      const mixers = [...new Set(rs.map((r) => r.mixer))].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b));
      md.push(`### MQAR, L = ${L}, ${D} key-value pairs, vocab ${V}: accuracy (%) at the queries by model width`, '');
      md.push(
        `| mixer | ${widths.map((w) => `d = ${w}`).join(' | ')} |`,
        `| --- | ${widths.map(() => '---').join(' | ')} |`,
      );
      for (const m of mixers) {
        md.push(
          `| \`${m}\` | ${widths
            .map((w) => {
              const r = rs.find((x) => x.mixer === m && x.model.dModel === w);
              return r ? pct(r.accuracy.token) : '-';
            })
            .join(' | ')} |`,
        );
      }
      md.push('');
      plots.push({
        name: `mqar-L${L}-kv${D}`,
        svg: linePlot(
          `MQAR (L ${L}, ${D} pairs): accuracy vs width`,
          mixers.map((m) => ({
            label: m,
            points: rs
              .filter((r) => r.mixer === m)
              .sort((a, b) => a.model.dModel - b.model.dModel)
              .map((r) => [Math.log2(r.model.dModel), 100 * r.accuracy.token] as [number, number]),
          })),
          'log2(d_model)',
          'accuracy (%)',
        ),
      });
    }
  }
  for (const x of extra) {
    md.push(...x.markdown);
    plots.push(...x.plots);
  }
  if (runs.length) {
    md.push('### Runs', '', '| task | mixer | what it is | command |', '| --- | --- | --- | --- |');
    for (const r of [...runs].sort((a, b) => a.task.localeCompare(b.task) || byMixer(a, b)))
      md.push(`| ${r.task} | \`${r.mixer}\` | ${MIXER_DESCRIPTIONS[r.mixer]} | \`${r.command}\` |`);
    md.push('');
  }
  return { markdown: md.join('\n'), plots };
}

function fmtTime(s: number): string {
  return s < 120 ? `${s.toFixed(0)} s` : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#17becf'];
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Lines of (x, y) points with axes, ticks at integer x, y in [0, 100], a legend; `mark` draws a dashed vertical line. */
export function linePlot(
  title: string,
  series: { label: string; points: [number, number][] }[],
  xLabel: string,
  yLabel: string,
  mark?: number,
): string {
  const W = 640,
    H = 400,
    L = 60,
    R = 150,
    T = 40,
    B = 50;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  if (mark !== undefined) xs.push(mark);
  const x0 = xs.length ? Math.floor(Math.min(...xs)) : 0;
  const x1 = Math.max(x0 + 1, xs.length ? Math.ceil(Math.max(...xs)) : 1);
  const px = (x: number): number => L + ((x - x0) / Math.max(1e-9, x1 - x0)) * (W - L - R);
  const py = (y: number): number => T + (1 - y / 100) * (H - T - B);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  for (let y = 0; y <= 100; y += 20)
    out.push(
      `<line x1="${L}" x2="${W - R}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/><text x="${L - 6}" y="${py(y) + 4}" text-anchor="end">${y}</text>`,
    );
  for (let x = x0; x <= x1; x++)
    out.push(
      `<line x1="${px(x)}" x2="${px(x)}" y1="${py(0)}" y2="${py(0) + 4}" stroke="black"/><text x="${px(x)}" y="${py(0) + 18}" text-anchor="middle">${x}</text>`,
    );
  out.push(
    `<line x1="${L}" x2="${W - R}" y1="${py(0)}" y2="${py(0)}" stroke="black"/><line x1="${L}" x2="${L}" y1="${T}" y2="${py(0)}" stroke="black"/>`,
  );
  out.push(
    `<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">${esc(xLabel)}</text><text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  );
  if (mark !== undefined)
    out.push(
      `<line x1="${px(mark)}" x2="${px(mark)}" y1="${T}" y2="${py(0)}" stroke="#999" stroke-dasharray="4 3"/><text x="${px(mark) + 4}" y="${T + 12}" fill="#666">train</text>`,
    );
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    if (pts.length > 1)
      out.push(
        `<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' ')}"/>`,
      );
    for (const p of pts)
      out.push(`<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="3" fill="${c}"/>`);
    out.push(
      `<rect x="${W - R + 12}" y="${T + i * 18}" width="12" height="3" fill="${c}"/><text x="${W - R + 30}" y="${T + i * 18 + 5}">${esc(s.label)}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Bars of our values (0..100) with the paper's value as a tick where known. */
export function barPlot(
  title: string,
  bars: { label: string; value: number; paper: number | undefined }[],
  yLabel: string,
): string {
  const W = 640,
    H = 400,
    L = 60,
    T = 40,
    B = 70,
    R = 20;
  const bw = (W - L - R) / Math.max(1, bars.length);
  const py = (y: number): number => T + (1 - y / 100) * (H - T - B);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  for (let y = 0; y <= 100; y += 20)
    out.push(
      `<line x1="${L}" x2="${W - R}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/><text x="${L - 6}" y="${py(y) + 4}" text-anchor="end">${y}</text>`,
    );
  out.push(`<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  bars.forEach((b, i) => {
    const x = L + i * bw + bw * 0.15,
      w = bw * 0.7;
    out.push(
      `<rect x="${x.toFixed(1)}" y="${py(b.value).toFixed(1)}" width="${w.toFixed(1)}" height="${(py(0) - py(b.value)).toFixed(1)}" fill="${COLORS[0]}"/>`,
    );
    out.push(
      `<text x="${(x + w / 2).toFixed(1)}" y="${(py(b.value) - 4).toFixed(1)}" text-anchor="middle">${b.value.toFixed(1)}</text>`,
    );
    if (b.paper !== undefined)
      out.push(
        `<line x1="${x.toFixed(1)}" x2="${(x + w).toFixed(1)}" y1="${py(b.paper).toFixed(1)}" y2="${py(b.paper).toFixed(1)}" stroke="${COLORS[1]}" stroke-width="3"/>`,
      );
    out.push(
      `<text transform="translate(${(x + w / 2).toFixed(1)} ${py(0) + 12}) rotate(30)" text-anchor="start">${esc(b.label)}</text>`,
    );
  });
  out.push(`<line x1="${L}" x2="${W - R}" y1="${py(0)}" y2="${py(0)}" stroke="black"/>`);
  out.push(
    `<rect x="${W - 200}" y="${T - 8}" width="12" height="8" fill="${COLORS[0]}"/><text x="${W - 184}" y="${T}">this engine</text><rect x="${W - 110}" y="${T - 6}" width="12" height="3" fill="${COLORS[1]}"/><text x="${W - 94}" y="${T}">paper</text>`,
  );
  out.push('</svg>');
  return out.join('\n');
}
