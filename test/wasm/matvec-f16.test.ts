import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { MATVEC_MAX_M } from '../../src/backend/cpu/wasm/launch.js';
import { rand } from '../helpers/random.js';

/**
 * The f16 products (matvec_f16 for decode's few rows, the gemm beyond MATVEC_MAX_M) against the
 * TypeScript reference on widths around the kernel's steps (8, 16 and 32 columns, and the scalar
 * tail), with weights that take every path of the half -> float conversion: subnormal halves, +0
 * and -0, normal halves of every exponent, and inf and NaN (a NaN weight makes its row NaN, an inf
 * weight its row +-inf, or NaN where it meets x = 0 or the other infinity, as in the reference).
 */
const ts = new CpuBackend({ kernels: 'ts' });
const wa = new CpuBackend({ kernels: 'wasm' });
assert.equal(wa.kernels, 'wasm', 'this engine runs the WebAssembly kernels');

const WIDTHS = [1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 47, 48, 63, 64, 65, 100, 257];

/** Deterministic f16 bit patterns (an LCG), a third of them subnormal or zero, none of exponent 31. */
function halves(n: number, seed: number): Uint16Array {
  let s = seed >>> 0 || 1;
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const r = s >>> 8;
    const sign = (r & 1) << 15;
    const kind = (r >>> 1) % 6;
    if (kind === 0)
      out[i] = sign | ((r >>> 4) & 0x3ff); // subnormal (or zero)
    else if (kind === 1)
      out[i] = sign; // +0 or -0
    else out[i] = sign | (((r >>> 4) % 31) << 10) | ((r >>> 12) & 0x3ff); // normal, exponent 0..30
  }
  return out;
}

function product(
  m: number,
  q: number,
  p: number,
  w: Uint16Array,
  x: Float32Array,
): { want: Float32Array; got: Float32Array } {
  const out: Float32Array[] = [];
  for (const be of [ts, wa]) {
    const o = be.upload(new Float32Array(m * p), [m, p]);
    be.matmul(o, be.upload(x, [m, q]), be.upload(w, [p, q], 'f16'), { transB: true });
    out.push(be.readSync(o) as Float32Array);
  }
  return { want: out[0], got: out[1] };
}

/** Same value for inf and NaN, close (f32 sums against the reference's f64) for finite ones. */
function check(got: Float32Array, want: Float32Array, tol: number, what: string): void {
  for (let k = 0; k < want.length; k++) {
    if (Number.isFinite(want[k]))
      assert.ok(Math.abs(got[k] - want[k]) <= tol, `${what} [${k}]: ${got[k]} vs ${want[k]}`);
    else assert.ok(Object.is(got[k], want[k]), `${what} [${k}]: ${got[k]}, expected ${want[k]}`);
  }
}

test('matmul f16: subnormal halves, +-0 and halves of every exponent, widths around the kernel steps', () => {
  for (const m of [1, 2, MATVEC_MAX_M - 1, MATVEC_MAX_M])
    for (const q of WIDTHS)
      for (const p of [1, 3, 6]) {
        const w = halves(p * q, 3 + q + 7 * p);
        const x = rand(m * q, 5 + m + q, 0.01);
        const { want, got } = product(m, q, p, w, x);
        let scale = 0;
        for (let j = 0; j < p * q; j++) scale = Math.max(scale, Math.abs(want[j % want.length]));
        check(got, want, 4e-6 * Math.sqrt(q) * (1 + scale), `m${m} q${q} p${p}`);
      }
});

test('matmul f16: subnormal weights times tiny and huge x stay exact products', () => {
  // only subnormal halves and zeros: products near the f32 subnormal range, and with |x| large the
  // kernel's pre-scaling of x (prep_f16x) near the top of the f32 range
  for (const big of [1e-30, 1, 1e30])
    for (const q of [9, 33, 65]) {
      const m = 1,
        p = 4;
      const w = halves(p * q, 11 + q).map((h) => h & 0x83ff);
      const x = rand(m * q, 13 + q, big);
      const { want, got } = product(m, q, p, w, x);
      const scale = Math.max(...want.map(Math.abs));
      check(got, want, 4e-6 * Math.sqrt(q) * scale, `|x| ~ ${big} q${q}`);
    }
});

test('matmul f16: inf and NaN weights (NaN stays NaN), in the vector steps and in the scalar tail', () => {
  const INF = 0x7c00,
    NINF = 0xfc00,
    NAN = 0x7e00,
    NNAN = 0xfd01;
  for (const m of [1, 3, MATVEC_MAX_M])
    for (const q of [1, 9, 17, 33, 47, 70]) {
      const p = 7;
      const w = halves(p * q, 17 + q);
      // row 0 finite; row 1 +inf; row 2 -inf and +inf (NaN); row 3 NaN; row 4 -NaN; row 5 +inf where
      // x is 0 in row 0 of x (NaN there); row 6 -inf in the last column (the scalar tail when q % 8)
      const at = (j: number, c: number, h: number) => {
        w[j * q + (c % q)] = h;
      };
      at(1, q >> 1, INF);
      at(2, 0, NINF);
      at(2, q - 1, INF);
      at(3, q >> 2, NAN);
      at(4, q - 1, NNAN);
      at(5, 1, INF);
      at(6, q - 1, NINF);
      const x = rand(m * q, 19 + q).map((v) => Math.abs(v) + 0.5); // positive: the infinities keep their sign
      x[1 % q] = 0;
      const { want, got } = product(m, q, p, w, x);
      if (q > 1) assert.ok(Number.isNaN(want[3]) && want[1] === Infinity, 'the reference makes NaN and inf rows');
      check(
        got,
        want,
        4e-6 * Math.sqrt(q) * (1 + Math.max(...want.filter(Number.isFinite).map(Math.abs))),
        `m${m} q${q}`,
      );
    }
});
