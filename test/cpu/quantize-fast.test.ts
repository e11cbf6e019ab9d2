import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMambaError } from '../../src/errors.js';
import { quantizeQ4Fast, quantizeQ8Fast } from '../../src/backend/cpu/reference/quantize-fast.js';
import { q4Layout, quantizeQ4 } from '../../src/backend/cpu/reference/q4.js';
import { q8Layout, quantizeQ8 } from '../../src/backend/cpu/reference/q8.js';
import { randomArray } from '../helpers/compare.js';
import { quantCases, type QuantCase } from '../helpers/quantize-cases.js';

/**
 * The load-time quantisers (backend/cpu/reference/quantize-fast.ts) give the references' bytes (reference/q4.ts, q8.ts:
 * the specification): odd widths (a padded last block, widths under one block), rows of zeros, -0, ties
 * in |w| of both signs, values on the rounding boundaries of the grid, subnormals, large and tiny scales,
 * and NaN (q8; the loader refuses non-finite weights before, but upload takes what it is given).
 */
const cases = (): QuantCase[] => quantCases();

test('quantizeQ4Fast gives the bytes of the reference quantizeQ4', () => {
  for (const c of cases()) {
    const L = q4Layout(c.rows, c.cols);
    const want = new Uint8Array(L.bytes),
      got = new Uint8Array(L.bytes).fill(0xaa);
    quantizeQ4(c.v, c.rows, c.cols, want);
    quantizeQ4Fast(c.v, c.rows, c.cols, got);
    assert.deepEqual(got, want, c.name);
  }
});

test('quantizeQ8Fast gives the bytes of the reference quantizeQ8, NaN included', () => {
  const all = cases();
  const withNaN = randomArray(3 * 40, 9, -1, 1);
  withNaN[45] = NaN;
  all.push({ name: 'a NaN in the second row', rows: 3, cols: 40, v: withNaN });
  for (const c of all) {
    const L = q8Layout(c.rows, c.cols);
    const want = new Int8Array(L.bytes),
      got = new Int8Array(L.bytes).fill(-86);
    quantizeQ8(c.v, c.rows, c.cols, want);
    quantizeQ8Fast(c.v, c.rows, c.cols, got);
    assert.deepEqual(new Uint8Array(got.buffer), new Uint8Array(want.buffer), c.name);
  }
});

test("quantizeQ4Fast refuses a weight beyond the f16 scale's range as the reference does", () => {
  const data = Float32Array.from({ length: 64 }, (_, i) => (i === 40 ? -6e5 : 1));
  const L = q4Layout(2, 32);
  const message = (f: () => void): string => {
    try {
      f();
    } catch (e) {
      assert.ok(isMambaError(e, 'UNSUPPORTED'));
      return (e as Error).message;
    }
    return 'no error';
  };
  const want = message(() => quantizeQ4(data, 2, 32, new Uint8Array(L.bytes)));
  assert.match(want, /row 1 holds -600000/);
  assert.equal(
    message(() => quantizeQ4Fast(data, 2, 32, new Uint8Array(L.bytes))),
    want,
  );
});
