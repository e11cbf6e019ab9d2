import type { TaskRunResult } from './results.js';
import { linePlot } from './report.js';

/**
 * The report sections of the Mamba-3 experiments (issue 18): state tracking (parity, modular addition:
 * final accuracy per run and the held-out accuracy curves, so a run that has not converged shows how far
 * it got) and MQAR by state size (accuracy per mixer and d_state at one width).
 */
export interface Section {
  markdown: string[];
  plots: { name: string; svg: string }[];
}

const pct = (x: number): string => (100 * x).toFixed(1);
const label = (r: TaskRunResult): string =>
  `${r.mixer} d${r.model.dModel} n${r.model.dState}${r.train.seed ? ` s${r.train.seed}` : ''}`;
const stopped = (r: TaskRunResult): string => (r.log.stoppedBy === 'accuracy' ? ' (stopped: solved)' : '');
const byMixerThenSize = (a: TaskRunResult, b: TaskRunResult): number =>
  a.mixer.localeCompare(b.mixer) || a.model.dState - b.model.dState || a.model.dModel - b.model.dModel;

/** The held-out accuracy curves of some runs, x in thousands of steps. */
function curves(title: string, runs: TaskRunResult[]): string {
  return linePlot(
    title,
    runs.map((r) => ({
      label: label(r),
      points: r.log.accuracy.map(([s, a]) => [s / 1000, 100 * a] as [number, number]),
    })),
    'training steps (thousands)',
    'held-out token accuracy (%)',
  );
}

/** Parity and modular addition: a table per (task, length, modulus) and the curves. */
export function stateTrackingSection(runs: TaskRunResult[]): Section {
  const out: Section = { markdown: [], plots: [] };
  const st = runs.filter((r) => r.task === 'parity' || r.task === 'modular-addition');
  const groups = new Map<string, TaskRunResult[]>();
  for (const r of st) {
    const m = r.task === 'parity' ? 2 : r.settings.count;
    const k = `${r.task}/${r.settings.seqLen}/${m}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  for (const [k, rs] of groups) {
    const [task, L, m] = k.split('/');
    rs.sort(byMixerThenSize);
    out.markdown.push(
      `### ${task === 'parity' ? 'Parity' : `Modular addition mod ${m}`}, length ${L}: token accuracy (%) at every position`,
      '',
      '| mixer | d_model | d_state | params | seed | steps | accuracy | sequences exact | wall |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of rs)
      out.markdown.push(
        `| \`${r.mixer}\` | ${r.model.dModel} | ${r.model.dState} | ${r.parameters} | ${r.train.seed} | ${r.log.steps}${stopped(r)} | **${pct(r.accuracy.token)}** | ${pct(r.accuracy.sequence)} | ${r.wallSeconds.toFixed(0)} s |`,
      );
    out.markdown.push('');
    const name = task === 'parity' ? `parity-L${L}` : `modular-addition-L${L}-m${m}`;
    out.plots.push({ name, svg: curves(`${task} (L ${L}${task === 'parity' ? '' : `, mod ${m}`})`, rs) });
  }
  return out;
}

/** MQAR groups (length, pairs, vocabulary, width) whose runs differ in d_state: accuracy by state size. */
export function stateSizeSection(runs: TaskRunResult[]): Section {
  const out: Section = { markdown: [], plots: [] };
  const groups = new Map<string, TaskRunResult[]>();
  for (const r of runs.filter((x) => x.task === 'mqar')) {
    const k = `${r.settings.seqLen}/${r.settings.count}/${r.settings.vocabSize}/${r.model.dModel}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  for (const [k, rs] of groups) {
    const sizes = [...new Set(rs.map((r) => r.model.dState))].sort((a, b) => a - b);
    if (sizes.length < 2) continue;
    const [L, D, V, d] = k.split('/');
    rs.sort(byMixerThenSize);
    const mixers = [...new Set(rs.map((r) => r.mixer))];
    out.markdown.push(
      `### MQAR by state size: L ${L}, ${D} key-value pairs, vocab ${V}, d_model ${d}: accuracy (%) at the queries`,
      '',
      `| mixer | ${sizes.map((n) => `d_state ${n}`).join(' | ')} |`,
      `| --- | ${sizes.map(() => '---').join(' | ')} |`,
    );
    for (const m of mixers)
      out.markdown.push(
        `| \`${m}\` | ${sizes
          .map((n) => {
            const r = rs.find((x) => x.mixer === m && x.model.dState === n);
            return r ? `${pct(r.accuracy.token)} (${r.parameters} params, ${r.log.steps} steps)` : '-';
          })
          .join(' | ')} |`,
      );
    out.markdown.push('');
    out.plots.push({ name: `mqar-state-L${L}-kv${D}-d${d}`, svg: curves(`MQAR (L ${L}, ${D} pairs, d ${d})`, rs) });
  }
  return out;
}
