import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { MATVEC_MAX_M } from '../../src/backend/cpu/wasm/launch.js';

/**
 * The q4 products at the int16 bound of the relaxed build's sums: gemm_q's relaxed path adds a block's
 * relaxed-dot pairs (pmaddubsw) as int16 and widens them once per block, matvec_q4 adds two halves and
 * two blocks as int16 (gemm-int8.wat qrow4, matvec.wat q4block16). With every activation at ±127 after
 * quantisation and almost every nibble 15 (or all 0), a lane of one block reaches 8 · 2 · 127 · 15 less
 * one pair: an int16 sum carried over two blocks would wrap. Decode (m < MATVEC_MAX_M, one-row and
 * four-row loops) and prefill (4 x 8 tiles, ragged rows and columns, several depth panels of 256,
 * weights packed per call and once), 1 and 2 threads: the reference's bits, and the value the integers
 * give.
 */
const ts = new CpuBackend({ kernels: 'ts' });
const wa = new CpuBackend({ kernels: 'wasm' });
assert.equal(wa.kernels, 'wasm', 'this engine runs the WebAssembly kernels');
after(async () => {
  await wa.useThreads(1);
});

/**
 * Rows of W whose q4 blocks are extreme: kind 0 (rows j % 3 == 0) all 8 (d = -1, every nibble 0);
 * kinds 1 and 2 one 8 (nibble 0) and 31 of -7 (nibble 15), the 8 at element j % 32 of each block
 * (kind 2 negated: d = 1, nibbles the same). These values are on the q4 grid: they dequantise exactly.
 */
function extremeWeights(p: number, q: number): Float32Array {
  const W = new Float32Array(p * q);
  for (let j = 0; j < p; j++) {
    const kind = j % 3;
    const sign = kind === 2 ? -1 : 1;
    for (let c = 0; c < q; c++) W[j * q + c] = kind === 0 || c % 32 === j % 32 ? 8 * sign : -7 * sign;
  }
  return W;
}

/** Activations of magnitude 1 in every element (±127 after quantisation, dx = 1/127): row i's sign (-1)^i. */
function extremeActivations(m: number, q: number): Float32Array {
  const X = new Float32Array(m * q);
  for (let i = 0; i < m; i++) X.fill(i % 2 === 0 ? 1 : -1, i * q, (i + 1) * q);
  return X;
}

const SHAPES: [number, number, number][] = [
  [1, 288, 13], // decode: one-row loop (9 blocks, not whole groups of four)
  [3, 1024, 13], // decode: four-row loop (32 blocks) and its one-row tail (p % 4)
  [MATVEC_MAX_M, 288, 13], // prefill: 4 x 8 tiles, ragged columns, depth panels 256 + 32
  [13, 600, 21], // prefill: ragged rows and columns, depth panels 256 + 256 + 96 (q padded to 608)
];

test('q4 products at the int16 bound (activations ±127, nibbles 15 or 0): the reference bits, decode and prefill', async () => {
  for (const threads of [1, 2]) {
    await wa.useThreads(threads, { splitProductsFrom: 1 << 15 }); // (small products split too)
    for (const [m, q, p] of SHAPES) {
      const X = extremeActivations(m, q);
      const W = extremeWeights(p, q);
      for (const pack of [false, true]) {
        const run = (bk: CpuBackend): Float32Array => {
          const w = bk.upload(W, [p, q], 'q4');
          if (pack) bk.packWeights([w], 1 << 30);
          const o = bk.alloc([m, p]);
          bk.matmul(o, bk.upload(X, [m, q]), w, { transB: true });
          const r = bk.readSync(o) as Float32Array;
          if (pack) bk.unpackWeights();
          return r;
        };
        const want = run(ts);
        const what = `m${m} q${q} p${p}, ${threads} thread(s)${pack ? ', packed' : ''}`;
        assert.deepEqual(run(wa), want, what);
        // the integers: x is ±127 · (1/127) and W exact, so each output is ±Σ W[j, :] up to f32 rounding
        for (let i = 0; i < m; i++)
          for (let j = 0; j < p; j++) {
            let exact = 0;
            for (let c = 0; c < q; c++) exact += W[j * q + c];
            if (i % 2 === 1) exact = -exact;
            const got = want[i * p + j];
            assert.ok(Math.abs(got - exact) <= 1e-5 * Math.abs(exact), `${what} (${i}, ${j}): ${got} vs ${exact}`);
          }
      }
    }
  }
});
