/**
 * The recurrent step (`LanguageModel.stepIds`, as the server's engine calls it) on 1 and on 2 threads,
 * at batch 1 and at batch 32 (issue 15: `mamba-ts serve --threads 2` must not be slower than one thread
 * for a single client, and should gain at 32). One backend switched between thread counts round by
 * round (alternating: load on the machine hits both alike); per row, the median over rounds of the
 * wall time and of this process's CPU time (process.cpuUsage: workers that spin between commands show
 * as CPU time beyond the wall time). --split-from sets the pool's splitProductsFrom.
 *
 * Usage: npm run build && node dist/bench/step-threads.js [--model dir] [--rounds 5] [--split-from 524288]
 *        [--out file.json]
 * Writes bench/results/step-threads-<time>.json (machine, command, every figure) unless --out says where.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { loadModel } from '../src/node/load.js';
import { noGrad } from '../src/tensor/grad-mode.js';
import { commandLine } from './machine.js';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    'split-from': { type: 'string' },
    out: { type: 'string' },
  },
  strict: true,
});
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const splitFrom = a['split-from'] === undefined ? undefined : Number(a['split-from']);

const backend = new CpuBackend();
const model = await loadModel(a.model, { backend });
const lm = model.lm;
// as the engine does: the served weights packed once for the batched products
lm.backend.packWeights?.([...lm.parameters().values(), lm.lmHead], 256 << 20);

const samples = new Map<string, [number, number][]>();
for (let round = 0; round < Number(a.rounds); round++) {
  for (const threads of [1, 2]) {
    await backend.useThreads(threads, splitFrom === undefined ? {} : { splitProductsFrom: splitFrom });
    noGrad(() => {
      for (const b of [1, 32]) {
        const st = lm.initState(b);
        const ids = Array.from({ length: b }, (_, i) => (i * 37 + 5) % lm.vocabSize);
        const k = b === 1 ? 400 : 20; // steps per sample
        for (let j = 0; j < 5; j++) lm.stepIds(ids, st);
        const t0 = performance.now(),
          c0 = process.cpuUsage();
        for (let j = 0; j < k; j++) lm.stepIds(ids, st);
        const c = process.cpuUsage(c0),
          wall = (performance.now() - t0) * 1000;
        st.dispose();
        const key = `${threads} thread${threads > 1 ? 's' : ''}, batch ${b}`;
        if (!samples.has(key)) samples.set(key, []);
        samples.get(key)!.push([wall / k / b, (c.user + c.system) / k / b]);
      }
    });
  }
}
await backend.useThreads(1);

const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[xs.length >> 1];
const r1 = (x: number): number => Math.round(x * 10) / 10;
const rows = [...samples].map(([part, v]) => ({
  part,
  usPerRow: r1(med(v.map((s) => s[0]))),
  cpuUsPerRow: r1(med(v.map((s) => s[1]))),
}));
console.log('step'.padEnd(26) + 'wall us/row'.padStart(12) + 'CPU us/row'.padStart(12));
for (const r of rows)
  console.log(r.part.padEnd(26) + String(r.usPerRow).padStart(12) + String(r.cpuUsPerRow).padStart(12));
const result = {
  date: new Date().toISOString(),
  command: commandLine(),
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, loadavgAtStart: loadavg() },
  settings: { model: a.model ?? 'models/default', rounds: Number(a.rounds), splitProductsFrom: splitFrom ?? 'default' },
  rows,
};
const out = a.out ?? join(ROOT, `bench/results/step-threads-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
console.log(`wrote ${out}`);
backend.dispose();
