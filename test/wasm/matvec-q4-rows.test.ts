import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { rand } from '../helpers/random.js';

/**
 * The q4 decode product (matvec_q4) takes four rows of W at a time where rows are whole groups of four
 * blocks (depth padded to a multiple of 128) and one row at a time for the rest; both must give the
 * reference's bits (reference/int8-activations.ts): row counts that leave 1-3 rows over, chunks of the
 * thread split that start and end anywhere (1, 2 and 3 threads), several rows of x, bias and
 * accumulation into out, and depths with and without whole groups. matvec-q4-rows-simd128.test.ts runs
 * these on the plain SIMD128 build.
 */
const ref = new CpuBackend({ kernels: 'ts' });
const backends: CpuBackend[] = [ref];
after(() => {
  for (const b of backends) b.dispose();
});

const SHAPES = [
  // m, q, p: depth 128 (one group of four blocks), 1000 (padded to 1024), 1536 and 96 (three blocks: one row at a time)
  [1, 128, 7],
  [1, 1000, 130],
  [2, 1536, 13],
  [5, 256, 9],
  [1, 96, 11],
  [7, 512, 4],
] as const;

for (const threads of [1, 2, 3]) {
  test(`q4 decode product on ${threads} thread(s) equals the reference, four rows at a time or one`, async () => {
    const wa = new CpuBackend({ kernels: 'wasm' });
    backends.push(wa);
    await wa.useThreads(threads);
    for (const [m, q, p] of SHAPES) {
      const X = rand(m * q, q + m),
        W = rand(p * q, p),
        B = rand(p, 3),
        O = rand(m * p, 4);
      for (const [bias, accumulate] of [
        [false, false],
        [true, false],
        [true, true],
      ]) {
        const run = (b: CpuBackend): Float32Array => {
          const o = b.upload(O, [m, p]);
          b.matmul(o, b.upload(X, [m, q]), b.upload(W, [p, q], 'q4'), {
            transB: true,
            bias: bias ? b.upload(B, [p]) : null,
            accumulate,
          });
          return b.readSync(o) as Float32Array;
        };
        assert.deepEqual(run(wa), run(ref), `m${m} q${q} p${p} bias ${bias} accumulate ${accumulate}`);
      }
    }
  });
}
