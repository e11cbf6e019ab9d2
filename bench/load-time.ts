/**
 * How long a checkpoint takes to load onto the CPU backend (files read, values checked, converted or
 * quantised, placed in WebAssembly memory), per weight format, each load in a fresh process. With
 * `--base <checkout with a built dist/>`, that build's loader runs in turn with this one (A B A B ...)
 * and the table gives both medians and their ratio.
 *
 *   npm run build && node dist/bench/load-time.js --dir <Hugging Face checkpoint directory>
 *     [--dtypes f32,f16,q8,q4] [--threads 2] [--rounds 3] [--base <checkout>] [--out <file>]
 *
 * The llama.cpp side by side writes such a directory in the public shapes of Granite 4.0-H 1B (f16
 * safetensors, 2.9 GB): $TMPDIR/mamba-ts-llama-cpp/models/granite-4.0-h-1b-v2/hf. The files sit in the
 * page cache after the first load, so later loads time the loader rather than the disk.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { commandLine, hostMachine } from './machine.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const { values: o } = parseArgs({
  options: {
    dir: { type: 'string' },
    dtypes: { type: 'string', default: 'f32,f16,q8,q4' },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    base: { type: 'string' },
    out: { type: 'string' },
    child: { type: 'string' }, // internal: the dist root whose loader runs in this process
    dtype: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

if (o.child) {
  // one load in this process: { loadMs, cpuMs } on stdout
  const dist = o.child;
  const { CpuBackend } = (await import(pathToFileURL(join(dist, 'src/backend/cpu/cpu-backend.js')).href)) as {
    CpuBackend: new (o: { kernels: string }) => { useThreads(n: number): Promise<void>; dispose(): void };
  };
  const { loadAnyLanguageModel } = (await import(
    pathToFileURL(join(dist, 'src/models/node/load-checkpoint.js')).href
  )) as { loadAnyLanguageModel: (dir: string, o: { backend: unknown; dtype: string }) => Promise<unknown> };
  const bk = new CpuBackend({ kernels: 'wasm' });
  await bk.useThreads(Number(o.threads));
  const t0 = performance.now(),
    c0 = process.cpuUsage();
  await loadAnyLanguageModel(o.dir!, { backend: bk, dtype: o.dtype! });
  const loadMs = performance.now() - t0,
    cu = process.cpuUsage(c0);
  process.stdout.write(`${JSON.stringify({ loadMs, cpuMs: (cu.user + cu.system) / 1000 })}\n`);
  bk.dispose();
  process.exit(0);
}

if (o.help || !o.dir) {
  process.stdout.write(
    'usage: node dist/bench/load-time.js --dir <checkpoint> [--dtypes f32,f16,q8,q4] [--threads 2] [--rounds 3] [--base <checkout>] [--out <file>]\n',
  );
  process.exit(o.help ? 0 : 2);
}
const dir = resolve(o.dir);
if (!existsSync(join(dir, 'config.json'))) {
  process.stderr.write(`--dir ${dir}: no config.json there; give a Hugging Face checkpoint directory\n`);
  process.exit(2);
}
const builds: [string, string][] = [['this', join(ROOT, 'dist')]];
if (o.base) {
  const b = join(resolve(o.base), 'dist');
  if (!existsSync(join(b, 'src/models/node/load-checkpoint.js'))) {
    process.stderr.write(`--base ${o.base}: no built dist/ there (run npm run build in it)\n`);
    process.exit(2);
  }
  builds.push(['base', b]);
}
const rounds = Number(o.rounds);
const dtypes = o.dtypes.split(',');
const me = fileURLToPath(import.meta.url);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const loadBefore = loadavg();
const rows: { dtype: string; build: string; loadMs: number[]; cpuMs: number[] }[] = [];
for (const dtype of dtypes) {
  const per = builds.map(([build]) => ({ dtype, build, loadMs: [] as number[], cpuMs: [] as number[] }));
  for (let r = 0; r < rounds; r++)
    builds.forEach(([, dist], i) => {
      const res = spawnSync(
        process.execPath,
        [me, '--child', dist, '--dir', dir, '--dtype', dtype, '--threads', o.threads],
        { encoding: 'utf8', maxBuffer: 1 << 20 },
      );
      if (res.status !== 0) throw new Error(`load of ${dtype} by ${dist} failed:\n${res.stderr}`);
      const j = JSON.parse(res.stdout.trim().split('\n').pop()!) as { loadMs: number; cpuMs: number };
      per[i].loadMs.push(j.loadMs);
      per[i].cpuMs.push(j.cpuMs);
      process.stderr.write(`  ${dtype} ${builds[i][0]} round ${r + 1}: ${(j.loadMs / 1000).toFixed(2)} s\n`);
    });
  rows.push(...per);
}

const date = new Date().toISOString();
const report = {
  format: 'mamba-ts-load-time/1',
  date,
  command: commandLine(),
  machine: hostMachine(),
  loadAverage: { before: loadBefore, after: loadavg() },
  settings: { dir, dtypes, threads: Number(o.threads), rounds, base: o.base ?? null },
  rows: rows.map((r) => ({ ...r, medianMs: median(r.loadMs), medianCpuMs: median(r.cpuMs) })),
};
const file = o.out ?? join(ROOT, 'bench', 'results', `load-time-${date.slice(0, 19).replace(/[:T]/g, '-')}.json`);
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, `${JSON.stringify(report, null, 1)}\n`);

const lines = [
  report.command,
  '',
  `${dir}, ${o.threads} threads, medians of ${rounds} loads, each in a fresh process`,
  '',
];
lines.push(
  o.base
    ? '| weights | load s: this / base | ratio (base / this) | CPU s: this / base |\n| --- | --- | --- | --- |'
    : '| weights | load s | CPU s |\n| --- | --- | --- |',
);
for (const dtype of dtypes) {
  const [a, b] = report.rows.filter((r) => r.dtype === dtype);
  const s = (ms: number): string => (ms / 1000).toFixed(2);
  lines.push(
    b
      ? `| ${dtype} | ${s(a.medianMs)} / ${s(b.medianMs)} | ${(b.medianMs / a.medianMs).toFixed(2)} | ${s(a.medianCpuMs)} / ${s(b.medianCpuMs)} |`
      : `| ${dtype} | ${s(a.medianMs)} | ${s(a.medianCpuMs)} |`,
  );
}
process.stdout.write(`${lines.join('\n')}\n\nwrote ${file}\n`);
