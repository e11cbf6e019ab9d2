/**
 * Where a served token's time goes, per part, for the concurrency test of bench/serve-load.ts (issue
 * 15: 32 clients' aggregate tokens/s against one client's): the engine's own pieces timed in-process,
 * without HTTP, on one thread, each with wall clock and this process's CPU time (process.cpuUsage: on
 * a shared machine it leaves out time spent waiting for a core; the bound below uses CPU time).
 *  - the batched decode step (`LanguageModel.stepIds`, as the engine calls it) at batch 1 and 32: per row;
 *  - the prefill of one of serve-load's prompts (`forward`, lastOnly, batch 1, as the engine's prefill
 *    tick): per prompt, and per generated token (one prompt per --max-tokens generated tokens);
 *  - the sampler (`TokenSampler.next`, serve-load's settings: temperature 0.8, the rest off) per row, and
 *    beside it the step-by-step ReferenceSampler that the fused one replaced.
 * The model compute and the sampler of a token are costs of each row: they do not shrink with the batch.
 * The floor of 32 clients' time per token is step(32)/32 + sampler + prefill per token (HTTP, JSON,
 * detokenising, the event loop: none); a single client pays step(1) + sampler + prefill per token +
 * its own overheads. The table prints the ratio of one client's compute to that floor, and the ceiling
 * of serve-load's ratio given a single-client tokens/s (--single, measured by serve-load).
 *
 * Usage: npm run build && node dist/bench/serve-step-cost.js [--model dir] [--max-tokens 64] [--single 2173]
 *        [--out file.json]
 * Writes bench/results/serve-step-cost-<time>.json (machine, command, every figure) unless --out says where.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createBackend } from '../src/node/backends.js';
import { loadModel } from '../src/node/load.js';
import { ReferenceSampler } from '../src/backend/sampling-reference.js';
import { TokenSampler } from '../src/server/token-sampler.js';
import { noGrad } from '../src/tensor/grad-mode.js';
import { commandLine } from './machine.js';
import { GREEDY } from '../src/backend/sampling.js';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    'max-tokens': { type: 'string', default: '64' },
    single: { type: 'string' },
    out: { type: 'string' },
  },
  strict: true,
});
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const maxTokens = Number(a['max-tokens']);

const backend = await createBackend('cpu', { threads: 1 });
const model = await loadModel(a.model, { backend });
const lm = model.lm;
// as the engine does: the served weights packed once for the batched products
lm.backend.packWeights?.([...lm.parameters().values(), lm.lmHead], 256 << 20);
const V = lm.vocabSize;

/** Median wall and CPU microseconds of `reps` calls of f, after `warm` untimed ones. */
function time(reps: number, warm: number, f: (i: number) => void): { us: number; cpuUs: number } {
  const wall: number[] = [],
    cpu: number[] = [];
  for (let i = 0; i < warm + reps; i++) {
    const t0 = performance.now(),
      c0 = process.cpuUsage();
    f(i);
    const c = process.cpuUsage(c0);
    if (i >= warm) {
      wall.push((performance.now() - t0) * 1000);
      cpu.push(c.user + c.system);
    }
  }
  const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  return { us: med(wall), cpuUs: med(cpu) };
}

const r1 = (x: number): number => Math.round(x * 10) / 10;
const rows: Record<string, number | string>[] = [];
const parts: Record<string, { us: number; cpuUs: number }> = {};

noGrad(() => {
  for (const b of [1, 32]) {
    const st = lm.initState(b);
    const ids = Array.from({ length: b }, (_, i) => (i * 37 + 5) % V);
    // several steps per sample: a step at batch 1 is short for the CPU clock's resolution
    const k = b === 1 ? 40 : 4;
    const t = time(40, 5, () => {
      for (let j = 0; j < k; j++) lm.stepIds(ids, st);
    });
    st.dispose();
    parts[`step${b}`] = { us: t.us / k / b, cpuUs: t.cpuUs / k / b };
    rows.push({ part: `decode step, batch ${b}, per row`, us: r1(t.us / k / b), cpuUs: r1(t.cpuUs / k / b) });
  }
  // one of serve-load's prompts ("Story c.i: " + 24 words from its word list)
  const prompt =
    'Story 3.1: the little dog ran to the park and saw a big red ball under a tree near the river where children played every day the little dog';
  const ids = model.encode(prompt);
  const t = time(30, 3, () => {
    const st = lm.initState(1);
    const x = lm.backend.upload(Int32Array.from(ids), [1, ids.length], 'i32');
    lm.forward(x, { state: st, lastOnly: true }).dispose();
    x.dispose();
    st.dispose();
  });
  parts.prefill = { us: t.us / maxTokens, cpuUs: t.cpuUs / maxTokens };
  rows.push({ part: `prefill of a ${ids.length}-token prompt`, us: r1(t.us), cpuUs: r1(t.cpuUs) });
  rows.push({
    part: `  the same per generated token (/${maxTokens})`,
    us: r1(t.us / maxTokens),
    cpuUs: r1(t.cpuUs / maxTokens),
  });
});

{
  const sampling = { ...GREEDY, temperature: 0.8, presencePenalty: 0, frequencyPenalty: 0, seed: 7 };
  const logits = new Float32Array(32 * V);
  let s = 1;
  for (let i = 0; i < logits.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    logits[i] = (s / 4294967296) * 12 - 6;
  }
  const samplers = Array.from({ length: 32 }, (_, r) => new TokenSampler(sampling, [1, 2, 3], r, []));
  const t = time(200, 50, () => {
    for (let r = 0; r < 32; r++) samplers[r].next(logits, r * V, V);
  });
  parts.sampler = { us: t.us / 32, cpuUs: t.cpuUs / 32 };
  rows.push({ part: 'sampler (T 0.8), per row', us: r1(t.us / 32), cpuUs: r1(t.cpuUs / 32) });
  // beside it, the step-by-step reference the fused passes replace (not part of the bound)
  const ref = new ReferenceSampler();
  const tr = time(200, 50, (i) => {
    for (let r = 0; r < 32; r++) ref.sample(logits, r * V, V, sampling, null, r, i);
  });
  rows.push({ part: '  reference sampler (one pass per step)', us: r1(tr.us / 32), cpuUs: r1(tr.cpuUs / 32) });
}

const c = (k: string): number => parts[k].cpuUs;
const floor32 = c('step32') + c('sampler') + c('prefill');
const single = c('step1') + c('sampler') + c('prefill');
const bound: Record<string, number> = {
  floor32UsPerToken: r1(floor32),
  floor32TokensPerSecond: Math.round(1e6 / floor32),
  singleComputeUsPerToken: r1(single),
  computeRatio: Math.round((single / floor32) * 100) / 100,
};
if (a.single) bound.ratioCeilingGivenSingle = Math.round((1e6 / floor32 / Number(a.single)) * 100) / 100;

for (const r of rows)
  console.log(`${String(r.part).padEnd(44)} ${String(r.us).padStart(8)} us  ${String(r.cpuUs).padStart(8)} us CPU`);
console.log(JSON.stringify(bound));

const result = {
  date: new Date().toISOString(),
  command: commandLine(),
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, loadavgAtStart: loadavg() },
  settings: { model: a.model ?? 'models/default', maxTokens, threads: 1 },
  rows,
  bound,
  loadavgAtEnd: loadavg(),
};
const out = a.out ?? join(ROOT, `bench/results/serve-step-cost-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
console.log(`wrote ${out}`);
