import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { q8Layout, q8View, quantizeQ8 } from '../../src/backend/cpu/reference/q8.js';
import { isMambaError } from '../../src/errors.js';
import { roundActivationsInt8 } from '../helpers/int8-activations.js';
import { rand } from '../helpers/random.js';

/**
 * The q8 format (backend/cpu/q8.ts): quantise/dequantise error bounds per block, exact values that
 * the format can hold, zero blocks, padding; the reference product equals an f32 product of the
 * dequantised weights; kernels that cannot take q8 refuse it with DTYPE_MISMATCH.
 */
const bk = new CpuBackend({ kernels: 'ts' });

test('layout: rows padded to blocks of 32, scales after the quants', () => {
  assert.deepEqual(q8Layout(3, 70), { rows: 3, cols: 70, ld: 96, nb: 3, scaleOffset: 288, bytes: 288 + 36 });
  assert.deepEqual(q8Layout(1, 32), { rows: 1, cols: 32, ld: 32, nb: 1, scaleOffset: 32, bytes: 36 });
});

test('quantise/dequantise: every element within max|block| / 254 of its value, padding zero', () => {
  for (const [rows, cols, scale] of [
    [1, 1, 1],
    [3, 31, 1],
    [4, 33, 100],
    [2, 200, 1e-3],
    [5, 64, 3],
  ] as const) {
    const W = rand(rows * cols, rows * 7 + cols, scale);
    const t = bk.upload(W, [rows, cols], 'q8');
    const back = bk.readSync(t) as Float32Array;
    const v = q8View(t.storage as Int8Array, rows, cols);
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < v.nb; b++) {
        let amax = 0;
        for (let c = b * 32; c < Math.min(cols, b * 32 + 32); c++) amax = Math.max(amax, Math.abs(W[r * cols + c]));
        assert.ok(Math.abs(v.s[r * v.nb + b] - amax / 127) <= 1e-7 * amax, 'scale = max|w| / 127');
        for (let c = b * 32; c < b * 32 + 32; c++) {
          if (c >= cols) {
            assert.equal(v.q[r * v.ld + c], 0, 'padding is zero');
            continue;
          }
          const err = Math.abs(back[r * cols + c] - W[r * cols + c]);
          assert.ok(err <= (amax / 254) * (1 + 1e-6), `(${r}, ${c}): error ${err} > ${amax / 254}`);
        }
      }
    }
  }
});

test('values on the grid survive exactly; an all-zero block has scale 0; rounding is half away from zero', () => {
  const W = new Float32Array(64);
  for (let c = 0; c < 32; c++) W[c] = (c - 16) * 0.5; // block max 8: d = 8/127, values are not on the grid except 0 and +-8
  W[32 + 5] = 0; // second block all zero
  const dst = new Int8Array(q8Layout(1, 64).bytes);
  quantizeQ8(W, 1, 64, dst);
  const v = q8View(dst, 1, 64);
  assert.equal(v.q[0], -127);
  assert.equal(v.q[16], 0);
  assert.equal(v.s[1], 0);
  for (let c = 32; c < 64; c++) assert.equal(v.q[c], 0);
  // a value at exactly half a step rounds away from zero
  const H = new Float32Array(32);
  H[0] = 127;
  H[1] = 2.5;
  H[2] = -2.5;
  const dh = new Int8Array(q8Layout(1, 32).bytes);
  quantizeQ8(H, 1, 32, dh);
  assert.deepEqual([dh[0], dh[1], dh[2]], [127, 3, -3]);
});

test('the q8 reference product: int8 activations in the Linear layout, else the f32 product of the dequantised weights', () => {
  for (const [m, q, p] of [
    [1, 45, 7],
    [6, 70, 3],
    [3, 96, 5],
  ] as const) {
    for (const transB of [true, false]) {
      const X = rand(m * q, 3),
        W = rand(q * p, 4);
      const wq = bk.upload(W, transB ? [p, q] : [q, p], 'q8');
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

test('kernels that cannot take q8 refuse it with DTYPE_MISMATCH; views of q8 are refused', () => {
  for (const b of [bk, new CpuBackend({ kernels: 'wasm' })]) {
    const w = b.upload(rand(4 * 8, 1), [4, 8], 'q8');
    const f = b.upload(rand(4 * 8, 2), [4, 8]);
    const dm = (fn: () => void, what: string): void =>
      assert.throws(fn, (e) => isMambaError(e, 'DTYPE_MISMATCH'), what);
    dm(() => b.matmul(b.alloc([8, 8]), w, f, { transA: true }), 'matmul a');
    dm(() => b.addRmsnorm(b.alloc([4, 8]), f, null, b.upload(rand(8, 3), [8], 'q8'), 1e-5), 'rmsnorm weight');
    dm(() => b.unary('silu', b.alloc([4, 8]), w), 'unary');
    dm(() => b.binary('add', b.alloc([4, 8]), f, w), 'binary');
    dm(() => b.fill(w, 0), 'fill');
    dm(() => b.upload(new Uint16Array(32), [4, 8], 'q8'), 'upload of non-f32 data');
    const view = (): void => b.matmul(b.alloc([1, 4]), b.alloc([1, 2]), w.narrow(0, 2), { transB: true });
    assert.throws(view, (e) => isMambaError(e, 'UNSUPPORTED') && /views \(narrow\) of q8/.test(e.message), 'q8 view');
  }
});
