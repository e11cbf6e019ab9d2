import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { q4Layout, q4Quant, q4View, quantizeQ4 } from '../../src/backend/cpu/reference/q4.js';
import { isMambaError } from '../../src/errors.js';
import { f16ToF32Table } from '../../src/tensor/dtype.js';
import { roundActivationsInt8 } from '../helpers/int8-activations.js';
import { rand } from '../helpers/random.js';

/**
 * The q4 format (backend/cpu/reference/q4.ts): layout, quantise/dequantise error bounds per block,
 * the nibble order, zero blocks and padding; the reference product equals an f32 product of the
 * dequantised weights; the WebAssembly kernels (matvec for decode, gemm for prefill, on 1 and 2
 * threads) equal the reference on sizes that are not multiples of the block or the SIMD width;
 * kernels that cannot take q4 refuse it.
 */
const bk = new CpuBackend({ kernels: 'ts' });
const backends: CpuBackend[] = [];
after(() => {
  for (const b of backends) b.dispose();
});

test('layout: rows padded to blocks of 32, two quants a byte, f16 scales after the quants', () => {
  assert.deepEqual(q4Layout(3, 70), { rows: 3, cols: 70, ld: 96, nb: 3, scaleOffset: 144, bytes: 144 + 18 });
  assert.deepEqual(q4Layout(1, 32), { rows: 1, cols: 32, ld: 32, nb: 1, scaleOffset: 16, bytes: 18 });
});

test('quantise/dequantise: scale f16(w* / -8), error at most half a step (a step at the far end), padding 8', () => {
  const t16 = f16ToF32Table();
  for (const [rows, cols, scale] of [
    [1, 1, 1],
    [3, 31, 1],
    [4, 33, 100],
    [2, 200, 1e-2],
    [5, 64, 3],
  ] as const) {
    const W = rand(rows * cols, rows * 7 + cols, scale);
    const t = bk.upload(W, [rows, cols], 'q4');
    const back = bk.readSync(t) as Float32Array;
    const v = q4View(t.storage as Int8Array, rows, cols);
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < v.nb; b++) {
        let amax = 0,
          max = 0;
        for (let c = b * 32; c < Math.min(cols, b * 32 + 32); c++)
          if (Math.abs(W[r * cols + c]) > amax) {
            amax = Math.abs(W[r * cols + c]);
            max = W[r * cols + c];
          }
        const d = t16[v.s[r * v.nb + b]];
        assert.ok(Math.abs(d - max / -8) <= (amax / 8) * 2 ** -11, 'scale = w* / -8 in f16');
        for (let c = b * 32; c < b * 32 + 32; c++) {
          if (c >= cols) {
            assert.equal(q4Quant(v, r, c), 8, 'padding is zero (quant 8)');
            continue;
          }
          const w = W[r * cols + c];
          const err = Math.abs(back[r * cols + c] - w);
          // half a step, except past 7 steps on the side opposite w* (the grid is -8..7)
          const bound =
            Math.abs(w) > 7 * Math.abs(d) && Math.sign(w) !== Math.sign(max) ? Math.abs(d) : Math.abs(d) / 2;
          assert.ok(err <= bound * (1 + 1e-3) + 1e-12, `(${r}, ${c}): error ${err} > ${bound}`);
        }
      }
    }
  }
});

test('nibble order: byte i holds element i (low) and i + 16 (high); w* is exactly -8 d; zero block scale 0', () => {
  const W = new Float32Array(64);
  for (let c = 0; c < 32; c++) W[c] = c - 16; // w* = -16: d = 2, quants c / 2 rounded
  const dst = new Int8Array(q4Layout(1, 64).bytes);
  quantizeQ4(W, 1, 64, dst);
  const v = q4View(dst, 1, 64);
  assert.equal(f16ToF32Table()[v.s[0]], 2);
  assert.equal(v.s[1], 0);
  for (let i = 0; i < 16; i++) {
    const lo = Math.min(15, Math.trunc((i - 16) / 2 + 8.5)),
      hi = Math.min(15, Math.trunc(i / 2 + 8.5));
    assert.equal(v.q[i], lo | (hi << 4), `byte ${i}`);
    assert.equal(v.q[16 + i], 8 | (8 << 4), 'zero block: quants 8');
  }
  assert.equal((bk.readSync(bk.upload(W, [1, 64], 'q4')) as Float32Array)[0], -16);
});

test('the q4 reference product: int8 activations in the Linear layout, else the f32 product of the dequantised weights', () => {
  for (const [m, q, p] of [
    [1, 45, 7],
    [6, 70, 3],
    [3, 96, 5],
  ] as const) {
    for (const transB of [true, false]) {
      const X = rand(m * q, 3),
        W = rand(q * p, 4);
      const wq = bk.upload(W, transB ? [p, q] : [q, p], 'q4');
      const Wd = bk.readSync(wq) as Float32Array; // the dequantised weights
      const o1 = bk.alloc([m, p]);
      bk.matmul(o1, bk.upload(X, [m, q]), wq, { transB });
      const got = bk.readSync(o1);
      // transB: x rounded to int8 per block of 32 (llama.cpp's Q8_0 activations); f64 sums of the exact values
      const Xr = transB ? roundActivationsInt8(X, m, q) : Float64Array.from(X);
      for (let i = 0; i < m; i++)
        for (let j = 0; j < p; j++) {
          let s = 0;
          for (let c = 0; c < q; c++) s += Xr[i * q + c] * (transB ? Wd[j * q + c] : Wd[c * p + j]);
          assert.ok(Math.abs(got[i * p + j] - s) < 1e-5, `m${m} q${q} p${p} transB ${transB} (${i}, ${j})`);
        }
      if (transB) {
        // and the rounding did happen: the product of unrounded x differs
        const o2 = bk.alloc([m, p]);
        bk.matmul(o2, bk.upload(X, [m, q]), bk.upload(Wd, [p, q]), { transB });
        assert.notDeepEqual(bk.readSync(o2), got);
      }
    }
  }
});

test('WebAssembly kernels on 2 threads equal the reference: decode, prefill, odd sizes, bias, embedding', async () => {
  const wa = new CpuBackend({ kernels: 'wasm' });
  backends.push(wa);
  await wa.useThreads(2, { splitProductsFrom: 1 << 15 }); // (small products split too)
  for (const [m, q, p] of [
    [1, 333, 517],
    [3, 1000, 129],
    [20, 333, 517],
    [12, 600, 70], // gemm: depth in three panels of 256
  ] as const) {
    const X = rand(m * q, m),
      W = rand(p * q, q),
      B = rand(p, 5);
    const run = (b: CpuBackend): Float32Array => {
      const o = b.alloc([m, p]);
      b.matmul(o, b.upload(X, [m, q]), b.upload(W, [p, q], 'q4'), { transB: true, bias: b.upload(B, [p]) });
      return b.readSync(o) as Float32Array;
    };
    // int8 activations in both (reference/int8-activations.ts): the same bits, decode and prefill
    assert.deepEqual(run(wa), run(bk), `m${m} q${q} p${p}`);
  }
  const T = rand(50 * 77, 9);
  const ids = Int32Array.of(49, 0, 3, 3);
  const emb = (b: CpuBackend): Float32Array => {
    const o = b.alloc([4, 77]);
    b.embedding(o, b.upload(ids, [4], 'i32'), b.upload(T, [50, 77], 'q4'));
    return b.readSync(o) as Float32Array;
  };
  assert.deepEqual(emb(wa), emb(bk));
});

test('weights beyond the f16 scale range are refused', () => {
  const W = new Float32Array(32);
  W[3] = 1e6;
  assert.throws(
    () => bk.upload(W, [1, 32], 'q4'),
    (e) => isMambaError(e, 'UNSUPPORTED') && /524032/.test(e.message),
  );
});

test('kernels that cannot take q4 refuse it with DTYPE_MISMATCH; views of q4 are refused', () => {
  for (const b of [bk, new CpuBackend({ kernels: 'wasm' })]) {
    const w = b.upload(rand(4 * 8, 1), [4, 8], 'q4');
    const f = b.upload(rand(4 * 8, 2), [4, 8]);
    const dm = (fn: () => void, what: string): void =>
      assert.throws(fn, (e) => isMambaError(e, 'DTYPE_MISMATCH'), what);
    dm(() => b.matmul(b.alloc([8, 8]), w, f, { transA: true }), 'matmul a');
    dm(() => b.addRmsnorm(b.alloc([4, 8]), f, null, b.upload(rand(8, 3), [8], 'q4'), 1e-5), 'rmsnorm weight');
    dm(() => b.unary('silu', b.alloc([4, 8]), w), 'unary');
    dm(() => b.fill(w, 0), 'fill');
    dm(() => b.upload(new Uint16Array(32), [4, 8], 'q4'), 'upload of non-f32 data');
    const view = (): void => b.matmul(b.alloc([1, 4]), b.alloc([1, 2]), w.narrow(0, 2), { transB: true });
    assert.throws(view, (e) => isMambaError(e, 'UNSUPPORTED') && /views \(narrow\) of q4/.test(e.message), 'q4 view');
  }
});

test('activations rounded half away from zero, in the WebAssembly kernels as in the reference (ties, just below ties)', async () => {
  const wa = new CpuBackend({ kernels: 'wasm' });
  backends.push(wa);
  // block max 127: dx = 1, so x * (1 / dx) is x itself; ties at .5 and the float just below 0.5
  const below = Math.fround(0.5 - 2 ** -25);
  const row = [127, 2.5, -2.5, below, -below, 1.5, -1.5, 126.5, -126.5, 0.5, -0.5, 3.5, -3.5, 0, 64.5, -64.5];
  for (const [m, q] of [
    [1, 64],
    [3, 64],
    [9, 96], // gemm
    [2, 77], // a partial block (the scalar path)
  ] as const) {
    const X = new Float32Array(m * q);
    for (let i = 0; i < m * q; i++) X[i] = row[i % row.length] * (i % 3 === 2 ? -1 : 1);
    for (let i = 0; i < m; i++) for (let c = 0; c < q; c += 32) X[i * q + c] = 127; // every block's max
    const p = 5,
      W = rand(p * q, 9);
    const run = (b: CpuBackend): Float32Array => {
      const o = b.alloc([m, p]);
      b.matmul(o, b.upload(X, [m, q]), b.upload(W, [p, q], 'q4'), { transB: true });
      return b.readSync(o) as Float32Array;
    };
    const want = run(bk);
    assert.deepEqual(run(wa), want, `m${m} q${q}`);
    // and the reference is the rounding the test writes out (ties away from zero)
    const Xr = roundActivationsInt8(X, m, q);
    assert.equal(Xr[1], 3);
    assert.equal(Xr[2], Math.sign(X[2]) * 3);
    assert.equal(Xr[3], 0);
  }
});
