import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fft, irfft, nextPow2, rfft } from '../../src/backend/cpu/reference/fft.js';
import { randn } from '../autograd/f64.js';

/**
 * The FFT against the naive O(n²) DFT sum written from the definition, for powers of two (radix-2),
 * other lengths (Bluestein, including primes), and the packed real transforms; round trips too.
 */
function naiveDft(re: Float64Array, im: Float64Array, inverse: boolean): [Float64Array, Float64Array] {
  const n = re.length,
    s = inverse ? 1 : -1;
  const or = new Float64Array(n),
    oi = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let a = 0,
      b = 0;
    for (let t = 0; t < n; t++) {
      const ang = (s * 2 * Math.PI * ((k * t) % n)) / n;
      a += re[t] * Math.cos(ang) - im[t] * Math.sin(ang);
      b += re[t] * Math.sin(ang) + im[t] * Math.cos(ang);
    }
    or[k] = inverse ? a / n : a;
    oi[k] = inverse ? b / n : b;
  }
  return [or, oi];
}
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>, n = a.length): number => {
  let m = 0;
  for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const LENGTHS = [1, 2, 3, 4, 5, 7, 8, 12, 16, 31, 64, 97, 100, 128, 255];

test('complex fft and inverse match the naive DFT for powers of two and any other length', () => {
  for (const n of LENGTHS)
    for (const inverse of [false, true]) {
      const re = randn(n, n, 1),
        im = randn(n, n + 1000, 1);
      const [wr, wi] = naiveDft(re, im, inverse);
      const gr = Float64Array.from(re),
        gi = Float64Array.from(im);
      fft(gr, gi, inverse);
      const err = Math.max(maxDiff(gr, wr), maxDiff(gi, wi));
      assert.ok(err < 1e-10 * Math.max(1, n), `n=${n} inverse=${inverse}: error ${err}`);
    }
});

test('rfft gives the first half of the DFT of a real signal; irfft inverts it', () => {
  for (const n of LENGTHS) {
    const x = randn(n, 7 * n + 3, 1);
    const [wr, wi] = naiveDft(x, new Float64Array(n), false);
    const h = (n >> 1) + 1;
    const or = new Float64Array(h),
      oi = new Float64Array(h);
    rfft(x, or, oi);
    const err = Math.max(maxDiff(or, wr, h), maxDiff(oi, wi, h));
    assert.ok(err < 1e-10 * Math.max(1, n), `rfft n=${n}: error ${err}`);
    const back = new Float64Array(n);
    irfft(or, oi, back);
    assert.ok(maxDiff(back, x) < 1e-12 * Math.max(1, n), `irfft n=${n}: round trip error ${maxDiff(back, x)}`);
  }
});

test('a product of spectra is the circular convolution', () => {
  const n = 24;
  const a = randn(n, 1),
    b = randn(n, 2);
  const h = n / 2 + 1;
  const ar = new Float64Array(h),
    ai = new Float64Array(h),
    br = new Float64Array(h),
    bi = new Float64Array(h);
  rfft(a, ar, ai);
  rfft(b, br, bi);
  for (let k = 0; k < h; k++) {
    const r = ar[k] * br[k] - ai[k] * bi[k];
    ai[k] = ar[k] * bi[k] + ai[k] * br[k];
    ar[k] = r;
  }
  const got = new Float64Array(n);
  irfft(ar, ai, got);
  const want = new Float64Array(n);
  for (let t = 0; t < n; t++) for (let j = 0; j < n; j++) want[t] += a[j] * b[(t - j + n) % n];
  assert.ok(maxDiff(got, want) < 1e-12, `error ${maxDiff(got, want)}`);
  assert.equal(nextPow2(1), 1);
  assert.equal(nextPow2(17), 32);
  assert.equal(nextPow2(64), 64);
});
