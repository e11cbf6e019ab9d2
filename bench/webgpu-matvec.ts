/**
 * The decode products of a bench model (bench/llama-cpp-models.ts: Granite 4.0-H 1B, Falcon-H1 0.5B) on
 * WebGPU, one matrix-vector product per weight shape as the model's step takes it (`fusedLinear` with the
 * block's RMSNorm in the product, one row of x): GPU time from timestamp queries (median of --reps) with
 * the kernel loading one W word a step per thread (`matvecUnroll` 1, the kernel before) and four ahead
 * (4, the default), alternating over --rounds; effective bandwidth = weight bytes / time, and the
 * model's per-token sum (each shape times the number of weights of that shape).
 *   node dist/bench/webgpu-matvec.js [--models granite-4.0-h-1b] [--dtypes f32,f16,q4] [--reps 20]
 *     [--rounds 2] [--rows 0 (W rows a workgroup, `matvecRows`: 0 by shape; a list, e.g. 0,2,8, times each)]
 *     [--out DIR]
 * Writes webgpu-matvec.json (machine, command, rows) into --out (default bench/results).
 */
import { choiceList, numberList } from '../src/cli/args.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { BENCH_MODELS } from './llama-cpp-models.js';
import { argvOptions } from './argv.js';
import {
  backend,
  machine,
  random,
  randomTensor,
  table,
  timeCalls,
  writeResult,
  type BenchWeights,
} from './webgpu-common.js';

const arg = argvOptions(['models', 'dtypes', 'reps', 'rounds', 'rows', 'out']);
const models = choiceList(arg('models', 'granite-4.0-h-1b'), 'models', Object.keys(BENCH_MODELS));
const dtypes = choiceList(arg('dtypes', 'f32,f16,q4'), 'dtypes', ['f32', 'f16', 'bf16', 'q4']) as BenchWeights[];
const [reps] = numberList(arg('reps', '20'), 'reps', { int: true, min: 1 });
const [rounds] = numberList(arg('rounds', '2'), 'rounds', { int: true, min: 1 });
const rowChoices = numberList(arg('rows', '0'), 'rows', { int: true, min: 0, max: 8 });
for (const R of rowChoices) if (![0, 1, 2, 4, 8].includes(R)) throw new Error(`--rows: ${R} is not 0, 1, 2, 4 or 8`);
const out = process.argv.includes('--out') ? arg('out', '') : undefined;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const BYTES: Record<BenchWeights, number> = { f32: 4, f16: 2, bf16: 2, q4: 0.5625 };

const gpu = await backend();
if (!gpu.g.features.has('timestamp-query')) console.warn('no timestamp-query: the times are wall clock per call');
const rows: (string | number)[][] = [
  ['model', 'weights', 'R', 'W (p x q)', 'count', 'us: U 1', 'us: U 4', 'GB/s: U 1', 'GB/s: U 4', 'U 1 / U 4'],
];
const results: Record<string, unknown>[] = [];
try {
  for (const name of models) {
    const bm = BENCH_MODELS[name]();
    // every matrix the step multiplies by, by shape (the tied embedding is the lm_head)
    const shapes = new Map<string, { p: number; q: number; count: number }>();
    for (const t of bm.tensors) {
      if (t.shape.length !== 2 || Math.min(...t.shape) < 64 || t.hf.includes('conv1d')) continue;
      if (t.hf.includes('embed_tokens') && bm.tensors.some((u) => u.hf === 'lm_head.weight')) continue;
      const [p, q] = t.shape;
      const key = `${p}x${q}`;
      const s = shapes.get(key) ?? { p, q, count: 0 };
      s.count++;
      shapes.set(key, s);
    }
    for (const dtype of dtypes)
      for (const R of rowChoices) {
        gpu.options.matvecRows = R;
        const sum = { 1: 0, 4: 0 } as Record<1 | 4, number>;
        let bytes = 0;
        for (const { p, q, count } of shapes.values()) {
          const w = randomTensor(gpu, [p, q], dtype, 1 / Math.sqrt(q));
          const x = random(gpu, [1, q], -1, 1, 3).keep();
          const nw = random(gpu, [q], 0.5, 1.5, 5).keep();
          const o: Tensor = gpu.alloc([1, p]).keep();
          const call = (): void => gpu.fusedLinear({ out: o, x, weight: w, norm: { weight: nw, eps: 1e-5 } });
          const us: Record<1 | 4, number[]> = { 1: [], 4: [] };
          for (let r = 0; r < rounds; r++)
            for (const U of [1, 4] as const) {
              gpu.options.matvecUnroll = U;
              call();
              await gpu.sync();
              const t = await timeCalls(gpu, call, (k) => k.startsWith('matvec'), reps);
              us[U].push(t.best * 1000);
            }
          gpu.options.matvecUnroll = 4;
          const wBytes = p * q * BYTES[dtype];
          const [u1, u4] = [median(us[1]), median(us[4])];
          sum[1] += count * u1;
          sum[4] += count * u4;
          bytes += count * wBytes;
          rows.push([
            name,
            dtype,
            `${p} x ${q}`,
            count,
            u1.toFixed(1),
            u4.toFixed(1),
            (wBytes / u1 / 1e3).toFixed(0),
            (wBytes / u4 / 1e3).toFixed(0),
            (u1 / u4).toFixed(2),
          ]);
          results.push({ model: name, dtype, R, p, q, count, weightBytes: wBytes, us, medianUs: { 1: u1, 4: u4 } });
          for (const t of [w, x, nw, o]) t.dispose();
        }
        rows.push([
          name,
          dtype,
          'per token',
          '',
          sum[1].toFixed(0),
          sum[4].toFixed(0),
          (bytes / sum[1] / 1e3).toFixed(0),
          (bytes / sum[4] / 1e3).toFixed(0),
          (sum[1] / sum[4]).toFixed(2),
        ]);
        results.push({ model: name, dtype, R, perToken: true, weightBytes: bytes, us: sum });
      }
  }
  gpu.options.matvecRows = 0;
  console.log(table(rows));
  console.log(writeResult('webgpu-matvec', { ...machine(gpu), reps, rounds, results }, out));
} finally {
  gpu.dispose();
}
