/**
 * Time to first token of a wave of requests arriving together at the serving engine (issue 15, batched
 * prefill), in process: no HTTP, and each request's time measured in CPU time as well as wall time, so a
 * machine shared with other work still compares builds (the process's CPU time, every thread of it,
 * from a request's submission to its first token; wall time also counts the other work's slices).
 * For each wave size (--requests) and prefill chunk (--prefill-chunk), all requests are submitted in one
 * go and run to --max-tokens tokens; the table gives p50/p95 of both times and the model's forwards.
 * With --compare <dir> (another build's project root, e.g. main's), the same waves run on that build's
 * Engine too, alternating with this one's (same model in memory), and the table gives the ratios.
 * Prompts: --prompts load (serve-load's: "Story c.i:" and 24 words, 33-45 tokens) or a number n (token
 * ids, n each: prompts of one length).
 *
 * Usage: npm run build && node dist/bench/serve-prefill.js [--model dir] [--requests 8,32]
 *        [--prefill-chunk 64] [--prompts load|n] [--max-tokens 8] [--repeat 3] [--compare dir] [--out f.json]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_MODEL_DIR, loadModel } from '../src/node/load.js';
import { Engine, type EngineOptions, type EngineRequest } from '../src/server/engine.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { commandLine, hostMachine } from './machine.js';
import { promptText } from './serve-prompts.js';
import { GREEDY } from '../src/backend/sampling.js';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    requests: { type: 'string', default: '8,32' },
    'prefill-chunk': { type: 'string', default: '64' },
    prompts: { type: 'string', default: 'load' },
    'max-tokens': { type: 'string', default: '8' },
    repeat: { type: 'string', default: '3' },
    compare: { type: 'string' },
    out: { type: 'string' },
  },
  strict: true,
});
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

type EngineClass = new (lm: Engine['lm'], o: EngineOptions) => Engine;
const builds: { name: string; Engine: EngineClass }[] = [];
if (a.compare) {
  const url = pathToFileURL(join(resolve(a.compare), 'dist/src/server/engine.js')).href;
  builds.push({ name: 'compare', Engine: ((await import(url)) as { Engine: EngineClass }).Engine });
}
builds.push({ name: 'this', Engine });

const model = await loadModel(a.model ?? DEFAULT_MODEL_DIR);
const lm = model.lm;

function prompts(n: number): number[][] {
  if (a.prompts === 'load')
    return Array.from({ length: n }, (_, c) => model.encode(`Story ${c}.0: ${promptText(c * 1000, 24)}`));
  const len = Number(a.prompts);
  return Array.from({ length: n }, (_, c) => Array.from({ length: len }, (_, i) => 3 + ((i * 37 + c * 101) % 1900)));
}

const sampling = { ...GREEDY, temperature: 0.8, presencePenalty: 0, frequencyPenalty: 0 };
const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000; // ms
};
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const r2 = (x: number): number => Math.round(x * 100) / 100;

interface Wave {
  wallP50: number;
  wallP95: number;
  cpuP50: number;
  cpuP95: number;
  forwards: number;
}

/** One wave: every request submitted at once; each one's wall and CPU time to its first token. */
async function wave(E: EngineClass, n: number, chunk: number): Promise<Wave> {
  const engine = new E(lm, { maxRunning: Math.max(32, n), maxQueued: 1024, prefillChunk: chunk, snapshotEvery: 0 });
  const ps = prompts(n);
  const wall: number[] = [],
    cpu: number[] = [];
  let forwards = 0;
  const forward = lm.forward.bind(lm);
  lm.forward = (x: Tensor, o?: Parameters<typeof forward>[1]) => {
    forwards++;
    return forward(x, o);
  };
  try {
    const t0 = performance.now(),
      c0 = cpuNow();
    await Promise.all(
      ps.map((prompt, i) => {
        const req: EngineRequest = {
          prompt,
          n: 1,
          maxTokens: Number(a['max-tokens']),
          sampling: { ...sampling, seed: i },
          eos: [],
          suppress: [],
          onToken: () => {
            if (wall[i] !== undefined) return;
            wall[i] = performance.now() - t0;
            cpu[i] = cpuNow() - c0;
          },
        };
        return engine.submit(req);
      }),
    );
  } finally {
    lm.forward = forward;
    engine.dispose();
  }
  return { wallP50: pct(wall, 50), wallP95: pct(wall, 95), cpuP50: pct(cpu, 50), cpuP95: pct(cpu, 95), forwards };
}

const sizes = a.requests!.split(',').map(Number);
const chunks = a['prefill-chunk']!.split(',').map(Number);
const repeat = Number(a.repeat);
const rows: Record<string, unknown>[] = [];
await wave(Engine, 2, 64); // warm up (kernels, packed weights)
for (const chunk of chunks) {
  for (const n of sizes) {
    const runs = new Map<string, Wave[]>(builds.map((b) => [b.name, []]));
    for (let k = 0; k < repeat; k++) for (const b of builds) runs.get(b.name)!.push(await wave(b.Engine, n, chunk));
    // the median over the repeats of each figure
    const med = (name: string, f: keyof Wave): number =>
      pct(
        runs.get(name)!.map((w) => w[f]),
        50,
      );
    const row: Record<string, unknown> = { requests: n, prefillChunk: chunk, prompts: a.prompts };
    for (const b of builds) {
      row[b.name] = {
        ttftWallMsP50: r2(med(b.name, 'wallP50')),
        ttftWallMsP95: r2(med(b.name, 'wallP95')),
        ttftCpuMsP50: r2(med(b.name, 'cpuP50')),
        ttftCpuMsP95: r2(med(b.name, 'cpuP95')),
        forwards: med(b.name, 'forwards'),
      };
    }
    if (a.compare) {
      const ratio = (f: keyof Wave): number => r2(med('compare', f) / med('this', f));
      row.ratioCompareOverThis = {
        ttftWallP50: ratio('wallP50'),
        ttftWallP95: ratio('wallP95'),
        ttftCpuP50: ratio('cpuP50'),
        ttftCpuP95: ratio('cpuP95'),
      };
    }
    console.log(JSON.stringify(row));
    rows.push(row);
  }
}

const result = {
  date: new Date().toISOString(),
  command: commandLine(),
  machine: { ...hostMachine(), loadavgAtEnd: loadavg() },
  settings: { model: a.model ?? 'models/default', maxTokens: Number(a['max-tokens']), repeat, compare: a.compare },
  rows,
};
const out = a.out ?? join(ROOT, `bench/results/serve-prefill-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
console.log(`wrote ${out}`);
