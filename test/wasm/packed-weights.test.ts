import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { MATVEC_MAX_M } from '../../src/backend/cpu/wasm/launch.js';
import { f32ToBf16Bits, f32ToF16Bits, type DType } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { maxAbsDiff } from '../helpers/fixtures.js';
import { rand } from '../helpers/random.js';

/**
 * Weights declared constant (`packWeights`) are packed once into the gemm's panels: the products
 * give exactly what packing per call gives (same panels, same loop order), on odd sizes (several
 * depth and column blocks, ragged edges), every weight dtype, bias and accumulate, one thread and a
 * pool; and the TypeScript reference within the usual tolerance.
 */
const ts = new CpuBackend({ kernels: 'ts' });
const plain = new CpuBackend({ kernels: 'wasm' });
const packed = new CpuBackend({ kernels: 'wasm' });
assert.equal(plain.kernels, 'wasm', 'this engine runs the WebAssembly kernels');
after(async () => {
  await plain.useThreads(1);
  await packed.useThreads(1);
});

function put(bk: CpuBackend, data: Float32Array, shape: number[], dtype: DType = 'f32'): Tensor {
  if (dtype === 'f16' || dtype === 'bf16') {
    const bits = Uint16Array.from(data, (v) => (dtype === 'f16' ? f32ToF16Bits(v) : f32ToBf16Bits(v)));
    return bk.upload(bits, shape, dtype);
  }
  return bk.upload(data, shape, dtype);
}

const SHAPES: [number, number, number][] = [
  [MATVEC_MAX_M, 23, 17],
  [9, 1, 7],
  [13, 257, 131],
  [32, 300, 129],
  [17, 513, 8],
  [40, 130, 300],
];

test('packed constant weights: the gemm gives what packing per call gives, and the reference', async () => {
  for (const threads of [1, 2]) {
    await plain.useThreads(threads, { splitProductsFrom: 1 << 15 }); // (small products split too)
    await packed.useThreads(threads, { splitProductsFrom: 1 << 15 });
    for (const [m, q, p] of SHAPES)
      for (const dt of ['f32', 'f16', 'bf16', 'q8', 'q4'] as const)
        for (const [withBias, accumulate] of [
          [false, false],
          [true, true],
        ] as const) {
          const X = rand(m * q, m + q),
            W = rand(p * q, p + q),
            B = rand(p, 3),
            O = rand(m * p, 4);
          const run = (bk: CpuBackend): Float32Array => {
            const w = put(bk, W, [p, q], dt);
            if (bk === packed) bk.packWeights([w], 1 << 30);
            const out = bk.upload(O, [m, p]);
            const opts = { transB: true, bias: withBias ? bk.upload(B, [p]) : null, accumulate };
            bk.matmul(out, bk.upload(X, [m, q]), w, opts);
            const first = Float32Array.from(bk.readSync(out) as Float32Array);
            // again: the second product uses the packed copy made by the first
            bk.upload(O, [m, p]); // (a fresh out for accumulate)
            const out2 = bk.upload(O, [m, p]);
            bk.matmul(out2, bk.upload(X, [m, q]), w, opts);
            assert.deepEqual(bk.readSync(out2), first, 'the same product twice');
            return first;
          };
          const what = `m${m} q${q} p${p} ${dt} bias${withBias} acc${accumulate} threads${threads}`;
          const got = run(packed);
          assert.ok(packed.packedWeightBytes > 0, 'the weight was packed');
          assert.deepEqual(got, run(plain), what);
          const tout = ts.upload(O, [m, p]);
          const topts = { transB: true, bias: withBias ? ts.upload(B, [p]) : null, accumulate };
          ts.matmul(tout, ts.upload(X, [m, q]), put(ts, W, [p, q], dt), topts);
          const want = ts.readSync(tout) as Float32Array;
          const tol = 2e-6 * Math.sqrt(q) * (1 + Math.max(...want.map(Math.abs)));
          const err = maxAbsDiff(got, want);
          assert.ok(err <= tol, `${what}: max abs error ${err} > ${tol}`);
        }
    packed.unpackWeights();
  }
});

test('packed constant weights: over budget they are packed per call; after unpackWeights a changed weight is used as it is', () => {
  const [m, q, p] = [16, 70, 40];
  const X = rand(m * q, 1),
    W = rand(p * q, 2);
  const x = packed.upload(X, [m, q]);
  const w = packed.upload(W, [p, q]);
  const ref = (Wv: Float32Array): Float32Array => {
    const o = plain.alloc([m, p]);
    plain.matmul(o, plain.upload(X, [m, q]), plain.upload(Wv, [p, q]), { transB: true });
    return plain.readSync(o) as Float32Array;
  };
  const out = packed.alloc([m, p]);
  packed.packWeights([w], 100); // too small for its 4 * 70 * 40 bytes
  packed.matmul(out, x, w, { transB: true });
  assert.deepEqual(packed.readSync(out), ref(W));
  assert.equal(packed.packedWeightBytes, 0);
  packed.unpackWeights();
  packed.packWeights([w], 1 << 20);
  packed.matmul(out, x, w, { transB: true });
  assert.equal(packed.packedWeightBytes, 4 * q * p, 'packed on its first product');
  assert.deepEqual(packed.readSync(out), ref(W));
  packed.unpackWeights();
  assert.equal(packed.packedWeightBytes, 0);
  const W2 = rand(p * q, 3);
  const w2 = packed.upload(W2, [p, q]);
  packed.copy(w, w2); // the weight changes after unpackWeights
  packed.matmul(out, x, w, { transB: true });
  assert.deepEqual(packed.readSync(out), ref(W2));
});
