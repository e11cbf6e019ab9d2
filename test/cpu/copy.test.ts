import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { rand } from '../helpers/random.js';

// backend.copy on the CPU: contiguous tensors go in one copy (a state's (b, e, n) tensors), views and
// dtype changes row by row; the values are the same either way, overlapping rows included.

for (const kernels of ['ts', 'wasm'] as const) {
  const bk = new CpuBackend({ kernels });
  test(`copy (${kernels} kernels): contiguous, views, overlapping rows, f16`, () => {
    const X = rand(3 * 7 * 5, 1);
    const src = bk.upload(X, [3, 7, 5]);
    const dst = bk.alloc([3, 7, 5]);
    bk.copy(dst, src);
    assert.deepEqual(bk.readSync(dst), X);
    // into a view (ld > cols) and out of one
    const wide = bk.upload(rand(21 * 9, 2), [21, 9]);
    bk.copy(wide.narrow(2, 5), src.reshape([21, 5]));
    const w = bk.readSync(wide) as Float32Array;
    for (let r = 0; r < 21; r++) assert.deepEqual(w.subarray(r * 9 + 2, r * 9 + 7), X.subarray(r * 5, r * 5 + 5));
    const back = bk.alloc([21, 5]);
    bk.copy(back, wide.narrow(2, 5));
    assert.deepEqual(bk.readSync(back), X);
    // rows of one tensor onto others of the same storage (a batch row moved into a freed one)
    const rows = bk.upload(X, [15, 7]);
    const flat = rows.reshape([1, 105]);
    bk.copy(flat.narrow(0, 70), flat.narrow(35, 70)); // overlapping
    const want = Float32Array.from(X);
    want.copyWithin(0, 35, 105);
    assert.deepEqual(bk.readSync(rows), want);
    // f16 to f16 (bit patterns) and f16 to f32 (converted)
    const bits = Uint16Array.from({ length: 12 }, (_, i) => 0x3c00 + i);
    const h = bk.upload(bits, [3, 4], 'f16');
    const h2 = bk.alloc([3, 4], 'f16');
    bk.copy(h2, h);
    assert.deepEqual(bk.readSync(h2), bk.readSync(h));
    const f = bk.alloc([3, 4]);
    bk.copy(f, h);
    assert.deepEqual(bk.readSync(f), bk.readSync(h));
  });
}
