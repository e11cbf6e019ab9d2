import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QUANTIZE_CHUNK, type CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { q4Layout, quantizeQ4 } from '../../src/backend/cpu/reference/q4.js';
import { q8Layout, quantizeQ8 } from '../../src/backend/cpu/reference/q8.js';
import { isMambaError } from '../../src/errors.js';
import { f32ToHalf, halfToF32 } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { randomArray } from '../helpers/compare.js';
import { wa, wasmOnThreads } from '../helpers/wasm-backends.js';
import { QUANT_SHAPES, quantCases } from '../helpers/quantize-cases.js';

/**
 * Load-time quantisation in WebAssembly (quantize.wat, CpuBackend.upload and uploadFromHalf) against
 * the references' quantizeQ4 / quantizeQ8 (reference/q4.ts, q8.ts), byte for byte: from f32, f16 and
 * bf16 values; widths under a block, with a padded last block, and whole; rows of zeros, -0, ties in
 * |w| of both signs, grid points and halves, subnormals, the largest q4 weight; one thread and the pool
 * splitting rows. Blocks the kernel leaves to the TypeScript quantiser (inf, NaN, a q4 weight past the
 * f16 scale's range) give the references' bytes or errors.
 */

const SHAPES: [number, number][] = [...QUANT_SHAPES, [64, 1030]]; // (the last over the pool's threshold)

/** Counts the kernel's calls on `bk` that quantised every block (none left to the TypeScript quantiser). */
function countKernel(bk: CpuBackend): { n: number } {
  const ops = (bk as unknown as { wasm: { quantize: (d: Tensor, s: Tensor, r0?: number, n?: number) => boolean } })
    .wasm;
  const c = { n: 0 };
  const f = ops.quantize.bind(ops);
  ops.quantize = (...a) => {
    const ok = f(...a);
    if (ok) c.n++;
    return ok;
  };
  return c;
}

function refuses(f: () => unknown, re: RegExp): void {
  assert.throws(f, (e: unknown) => isMambaError(e, 'UNSUPPORTED') && re.test((e as Error).message));
}

function bytesOf(t: Tensor, n: number): Uint8Array {
  const st = t.storage as ArrayBufferView;
  return new Uint8Array(st.buffer, st.byteOffset, n).slice();
}

/** The reference's bytes for f32 values. */
function want(dtype: 'q4' | 'q8', v: Float32Array, rows: number, cols: number): Uint8Array {
  if (dtype === 'q4') {
    const out = new Uint8Array(q4Layout(rows, cols).bytes);
    quantizeQ4(v, rows, cols, out);
    return out;
  }
  const out = new Int8Array(q8Layout(rows, cols).bytes);
  quantizeQ8(v, rows, cols, out);
  return new Uint8Array(out.buffer);
}

/** The backend's bytes: from f32 by upload, from halves by uploadFromHalf. */
function got(
  bk: CpuBackend,
  dtype: 'q4' | 'q8',
  from: 'f32' | 'f16' | 'bf16',
  v: Float32Array,
  rows: number,
  cols: number,
): { bytes: Uint8Array; values: Float32Array } {
  const n = dtype === 'q4' ? q4Layout(rows, cols).bytes : q8Layout(rows, cols).bytes;
  if (from === 'f32') {
    const t = bk.upload(v, [rows, cols], dtype);
    const bytes = bytesOf(t, n);
    t.dispose();
    return { bytes, values: v };
  }
  const bits = f32ToHalf(v, from);
  const t = bk.uploadFromHalf(bits, from, [rows, cols], dtype);
  const bytes = bytesOf(t, n);
  t.dispose();
  return { bytes, values: halfToF32(bits, from) };
}

for (const dtype of ['q4', 'q8'] as const)
  test(`${dtype} quantisation in WebAssembly gives the reference's bytes (f32, f16, bf16; one thread and two)`, async () => {
    const pooled = await wasmOnThreads(2);
    for (const from of ['f32', 'f16', 'bf16'] as const) {
      // (the largest weight each source holds within q4's range)
      const inputs = quantCases(SHAPES, from === 'f16' ? 65504 : from === 'bf16' ? 522240 : 524032);
      const counts = [countKernel(wa), countKernel(pooled)];
      for (const c of inputs)
        for (const bk of [wa, pooled]) {
          const g = got(bk, dtype, from, c.v, c.rows, c.cols);
          assert.deepEqual(g.bytes, want(dtype, g.values, c.rows, c.cols), `${dtype} from ${from}: ${c.name}`);
        }
      // finite weights in range: the kernel did all of it, on both backends
      for (const c of counts) assert.equal(c.n, inputs.length, `${dtype} from ${from}: calls the kernel finished`);
    }
  });

test("values the kernel leaves (inf, NaN, past q4 range) get the references' bytes or errors", async () => {
  const pooled = await wasmOnThreads(2);
  for (const bk of [wa, pooled]) {
    // NaN: q4 and q8 quantise it their own way (q4 skips it in max|w|; q8's scale becomes NaN)
    const v = randomArray(6 * 70, 5, -1, 1);
    v[75] = NaN;
    for (const dtype of ['q4', 'q8'] as const)
      assert.deepEqual(got(bk, dtype, 'f32', v, 6, 70).bytes, want(dtype, v, 6, 70), `${dtype} with a NaN`);
    // inf: q8 quantises it, q4 refuses it (its scale would be inf) naming the row
    const w = randomArray(6 * 70, 6, -1, 1);
    w[300] = -Infinity;
    assert.deepEqual(got(bk, 'q8', 'f32', w, 6, 70).bytes, want('q8', w, 6, 70), 'q8 with -inf');
    refuses(() => bk.upload(w, [6, 70], 'q4'), /q4: row 4 holds -Infinity/);
    const big = randomArray(4 * 64, 7, -1, 1);
    big[150] = 6e5;
    refuses(() => bk.upload(big, [4, 64], 'q4'), /q4: row 2 holds 600000/);
    refuses(() => bk.uploadFromHalf(f32ToHalf(big, 'bf16'), 'bf16', [4, 64], 'q4'), /q4: row 2 holds 598016/);
  }
  // f16 inf and NaN bits handed to the kernel (the loader refuses them first; upload takes what it is given):
  // the halves' values, quantised by the reference
  for (const bk of [wa, pooled]) {
    const bits = f32ToHalf(randomArray(4 * 64, 9, -1, 1), 'f16');
    bits[70] = 0x7e00; // NaN
    const values = halfToF32(bits, 'f16');
    for (const dtype of ['q4', 'q8'] as const) {
      const L = dtype === 'q4' ? q4Layout(4, 64) : q8Layout(4, 64);
      const t = bk.uploadFromHalf(bits, 'f16', [4, 64], dtype);
      assert.deepEqual(bytesOf(t, L.bytes), want(dtype, values, 4, 64), `${dtype} from f16 with a NaN`);
      t.dispose();
    }
    bits[200] = 0xfc00; // -inf: q8 quantises it, q4 refuses it
    const t = bk.uploadFromHalf(bits, 'f16', [4, 64], 'q8');
    assert.deepEqual(
      bytesOf(t, q8Layout(4, 64).bytes),
      want('q8', halfToF32(bits, 'f16'), 4, 64),
      'q8 from f16 with -inf',
    );
    t.dispose();
    refuses(() => bk.uploadFromHalf(bits, 'f16', [4, 64], 'q4'), /q4: row 3 holds -Infinity/);
  }
  assert.throws(() => wa.uploadFromHalf(new Uint16Array(5), 'f16', [2, 3], 'q4'), /5 elements for shape \(2, 3\)/);
});

test('uploadFromHalf to f32 holds the halves’ values (as halfToF32 then upload); other dtypes are refused', () => {
  for (const from of ['f16', 'bf16'] as const) {
    const bits = f32ToHalf(randomArray(5 * 37, 8, -3, 3), from);
    const t = wa.uploadFromHalf(bits, from, [5, 37], 'f32');
    assert.deepEqual(wa.readSync(t), halfToF32(bits, from), from);
    t.dispose();
  }
  assert.throws(
    () => wa.uploadFromHalf(new Uint16Array(4), 'f16', [2, 2], 'f16' as 'f32'),
    /dtype must be f32, q8 or q4, got f16/,
  );
});

test('a tensor of more source bytes than one piece (QUANTIZE_CHUNK) is quantised piece by piece, the same bytes', async () => {
  const pooled = await wasmOnThreads(2);
  const cols = 4100;
  const rows = Math.floor(QUANTIZE_CHUNK / (2 * cols)) + 9; // f16: one whole piece, then 9 rows
  const v = randomArray(rows * cols, 12, -2, 2);
  const bits = f32ToHalf(v, 'f16');
  const values = halfToF32(bits, 'f16');
  for (const dtype of ['q4', 'q8'] as const) {
    const n = dtype === 'q4' ? q4Layout(rows, cols).bytes : q8Layout(rows, cols).bytes;
    const expect = want(dtype, values, rows, cols);
    const calls = countKernel(pooled);
    const t = pooled.uploadFromHalf(bits, 'f16', [rows, cols], dtype);
    assert.equal(calls.n, 2, `${dtype}: two pieces`);
    assert.deepEqual(bytesOf(t, n), expect, `${dtype} in two pieces`);
    t.dispose();
  }
  // a NaN in the last piece: the whole tensor goes to the TypeScript quantiser (q8 takes NaN its way)
  const withNaN = new Float32Array(values);
  withNaN[(rows - 2) * cols + 5] = NaN;
  const t = pooled.upload(withNaN, [rows, cols], 'q8');
  assert.deepEqual(
    bytesOf(t, q8Layout(rows, cols).bytes),
    want('q8', withNaN, rows, cols),
    'q8 with a NaN in the last piece',
  );
  t.dispose();
});
