import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { rand } from '../helpers/random.js';

/**
 * Rotary with a start per sequence (rowStarts: a decode batch of sequences at different positions)
 * equals rotating each sequence alone from its own start, bit for bit, in place and not, inverse too,
 * on a column window; bad starts are refused.
 */
const bk = new CpuBackend({ kernels: 'ts' });

test('rotary with rowStarts equals each sequence rotated alone from its start', () => {
  for (const [b, l, H, dh, inverse] of [
    [3, 1, 4, 8, false],
    [4, 3, 2, 6, true],
  ] as [number, number, number, number, boolean][]) {
    const starts = Array.from({ length: b }, (_, i) => [0, 17, 3, 1000][i % 4]);
    const w = H * dh;
    const x = bk.upload(rand(b * l * (w + 2), 5, 1), [b, l, w + 2]).narrow(1, w);
    const got = bk.alloc([b, l, w]);
    bk.rotary!(got, x, {
      headDim: dh,
      start: 99,
      base: 10000,
      inverse,
      rowStarts: bk.upload(Float32Array.from(starts), [b]),
    });
    const want = bk.alloc([b, l, w]);
    for (let bi = 0; bi < b; bi++) {
      const seq = (t: Tensor) =>
        new Tensor(t.backend, t.storage, [1, l, w], t.dtype, t.offset + bi * l * t.ld, t.ld, t.base ?? t);
      bk.rotary!(seq(want), seq(x), { headDim: dh, start: starts[bi], base: 10000, inverse });
    }
    assert.deepEqual(bk.readSync(got), bk.readSync(want));
    // in place
    const y = bk.upload(bk.readSync(x) as Float32Array, [b, l, w]);
    bk.rotary!(y, y, {
      headDim: dh,
      start: 0,
      base: 10000,
      inverse,
      rowStarts: bk.upload(Float32Array.from(starts), [b]),
    });
    assert.deepEqual(bk.readSync(y), bk.readSync(want));
  }
});

test('rotary refuses rowStarts that are not integers >= 0 or not one per sequence', () => {
  const x = bk.alloc([2, 1, 8]);
  const o = (s: number[]) => ({
    headDim: 8,
    start: 0,
    base: 10000,
    rowStarts: bk.upload(Float32Array.from(s), [s.length]),
  });
  assert.throws(() => bk.rotary!(x, x, o([1, -1])), { code: 'BAD_ARGUMENT' });
  assert.throws(() => bk.rotary!(x, x, o([1, 0.5])), { code: 'BAD_ARGUMENT' });
  assert.throws(() => bk.rotary!(x, x, o([1, 2, 3])), { code: 'SHAPE_MISMATCH' });
});
