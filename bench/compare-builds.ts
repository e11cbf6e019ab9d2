/**
 * Two builds of mamba-ts side by side on the CPU benchmark: runs `dist/bench/cpu.js --child` of a base
 * checkout and of this one in turn (A B A B ...), so that the machine's drift from minute to minute
 * falls on both alike, and prints the median of each and the ratio of medians (this / base).
 * Behaviour-preserving refactors are checked this way ("no regression").
 *
 *   npm run build && node dist/bench/compare-builds.js --base <checkout with a built dist/> [options]
 *     --configs 130m/f32/wasm,130m/q8/wasm   model/dtype/kernels, as cpu.js --child takes them
 *     --threads 1,2   --decode 64   --prefill 512   --rounds 3
 *     --out <file>    JSON output (default bench/results/compare-builds-<date>.json)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface ChildResult {
  model: string;
  dtype: string;
  kernels: string;
  threads: number;
  decodeTokS: number;
  prefillTokS: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function runChild(
  checkout: string,
  config: string,
  o: { threads: string; decode: string; prefill: string },
): ChildResult[] {
  const script = join(checkout, 'dist', 'bench', 'cpu.js');
  const args = ['--max-old-space-size=8192', script, '--child', config, '--threads', o.threads];
  args.push('--decode', o.decode, '--prefill', o.prefill, '--reps', '1');
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`${script} --child ${config} failed with status ${r.status}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ChildResult[];
}

function main(): void {
  const { values } = parseArgs({
    options: {
      base: { type: 'string' },
      configs: { type: 'string', default: '130m/f32/wasm,130m/q8/wasm' },
      threads: { type: 'string', default: '1,2' },
      decode: { type: 'string', default: '64' },
      prefill: { type: 'string', default: '512' },
      rounds: { type: 'string', default: '3' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help || values.base === undefined) {
    process.stdout.write('usage: node dist/bench/compare-builds.js --base <checkout> [--configs ...] [--rounds 3]\n');
    process.exit(values.help ? 0 : 2);
  }
  const base = resolve(values.base);
  if (!existsSync(join(base, 'dist', 'bench', 'cpu.js'))) {
    process.stderr.write(`--base ${base}: no dist/bench/cpu.js there (build that checkout first)\n`);
    process.exit(2);
  }
  const rounds = Number(values.rounds);
  const o = { threads: values.threads, decode: values.decode, prefill: values.prefill };
  // key "config/threads" -> side -> metric -> runs
  const runs = new Map<string, { base: ChildResult[]; head: ChildResult[] }>();
  for (let round = 0; round < rounds; round++) {
    for (const config of values.configs.split(',')) {
      for (const [side, checkout] of [
        ['base', base],
        ['head', ROOT],
      ] as const) {
        for (const r of runChild(checkout, config, o)) {
          const key = `${config}/${r.threads}t`;
          if (!runs.has(key)) runs.set(key, { base: [], head: [] });
          runs.get(key)![side].push(r);
          process.stderr.write(`round ${round + 1} ${side} ${key}: decode ${r.decodeTokS.toFixed(2)}, `);
          process.stderr.write(`prefill ${r.prefillTokS.toFixed(1)} tok/s\n`);
        }
      }
    }
  }
  const rows = [...runs].map(([key, s]) => {
    const m = (xs: ChildResult[], f: 'decodeTokS' | 'prefillTokS'): number => median(xs.map((x) => x[f]));
    const row = {
      config: key,
      decode: { base: m(s.base, 'decodeTokS'), head: m(s.head, 'decodeTokS') },
      prefill: { base: m(s.base, 'prefillTokS'), head: m(s.head, 'prefillTokS') },
    };
    return {
      ...row,
      decodeRatio: row.decode.head / row.decode.base,
      prefillRatio: row.prefill.head / row.prefill.base,
    };
  });
  const date = new Date().toISOString();
  const command = `node dist/bench/compare-builds.js ${process.argv.slice(2).join(' ')}`;
  const report = {
    date,
    command,
    base,
    rounds,
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGB: +(totalmem() / 1e9).toFixed(1) },
    node: process.version,
    loadAverageAfter: loadavg().map((x) => +x.toFixed(2)),
    rows,
  };
  const out =
    values.out ?? join(ROOT, 'bench', 'results', `compare-builds-${date.slice(0, 19).replace(/[:T]/g, '-')}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  const f = (x: number, d = 1): string => x.toFixed(d);
  const lines = [
    '| config | decode base | decode head | ratio | prefill base | prefill head | ratio |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.config} | ${f(r.decode.base)} | ${f(r.decode.head)} | ${f(r.decodeRatio, 2)} | ` +
        `${f(r.prefill.base)} | ${f(r.prefill.head)} | ${f(r.prefillRatio, 2)} |`,
    ),
  ];
  process.stdout.write(
    `${command}\n(${rounds} alternating rounds, medians in tok/s)\n\n${lines.join('\n')}\n\nwrote ${out}\n`,
  );
}

main();
