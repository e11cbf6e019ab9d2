import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { f32ToBf16Bits, f32ToF16Bits, f16ToF32Table, bf16BitsToF32 } from '../../src/tensor/dtype.js';
import { isMambaError } from '../../src/errors.js';
import { maxAbsDiff } from '../helpers/fixtures.js';
import { rand } from '../helpers/random.js';

/**
 * The CPU kernels against naive formulas written independently here (plain loops over the math of
 * REFERENCE.md), on odd sizes and on views. The model-level parity tests check them against PyTorch.
 */
const bk = cpu();

test('matmul: every transposition, bias, accumulate and odd sizes match a naive triple loop', () => {
  for (const [m, q, p] of [
    [1, 1, 1],
    [1, 7, 5],
    [3, 5, 7],
    [5, 33, 9],
    [17, 13, 66],
    [4, 64, 4],
  ] as const) {
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const withBias of [false, true])
          for (const accumulate of [false, true]) {
            const A = rand(m * q, 1 + m + q),
              B = rand(q * p, 2 + p),
              bias = rand(p, 3),
              O0 = rand(m * p, 4);
            const a = bk.upload(A, transA ? [q, m] : [m, q]);
            const b = bk.upload(B, transB ? [p, q] : [q, p]);
            const out = bk.upload(O0, [m, p]);
            bk.matmul(out, a, b, { transA, transB, bias: withBias ? bk.upload(bias, [p]) : null, accumulate });
            const want = new Float64Array(m * p);
            for (let i = 0; i < m; i++)
              for (let j = 0; j < p; j++) {
                let s = accumulate ? O0[i * p + j] : 0;
                for (let c = 0; c < q; c++)
                  s += (transA ? A[c * m + i] : A[i * q + c]) * (transB ? B[j * q + c] : B[c * p + j]);
                want[i * p + j] = s + (withBias ? bias[j] : 0);
              }
            const err = maxAbsDiff(bk.readSync(out), want);
            assert.ok(err < 1e-5, `m${m} q${q} p${p} tA${transA} tB${transB} bias${withBias} acc${accumulate}: ${err}`);
          }
  }
});

test('matmul: f16 and bf16 weights equal f32 weights holding the same rounded values', () => {
  const [m, q, p] = [6, 37, 11];
  const A = rand(m * q, 5),
    W = rand(p * q, 6);
  for (const dt of ['f16', 'bf16'] as const) {
    const bits = Uint16Array.from(W, (v) => (dt === 'f16' ? f32ToF16Bits(v) : f32ToBf16Bits(v)));
    const rounded = Float32Array.from(bits, (h) => (dt === 'f16' ? f16ToF32Table()[h] : bf16BitsToF32(h)));
    for (const rows of [1, 2, m]) {
      const a = bk.upload(A.subarray(0, rows * q), [rows, q]);
      const o1 = bk.alloc([rows, p]),
        o2 = bk.alloc([rows, p]);
      bk.matmul(o1, a, bk.upload(bits, [p, q], dt), { transB: true });
      bk.matmul(o2, a, bk.upload(rounded, [p, q]), { transB: true });
      assert.ok(maxAbsDiff(bk.readSync(o1), bk.readSync(o2)) < 1e-6, `${dt} rows ${rows}`);
    }
  }
});

test('matmul reads views: a column window (narrow) of a wider tensor as input and output', () => {
  const wide = bk.upload(rand(5 * 20, 7), [5, 20]);
  const x = wide.narrow(3, 8); // (5, 8), ld 20
  const w = bk.upload(rand(6 * 8, 8), [6, 8]);
  const outWide = bk.zeros([5, 10]);
  bk.matmul(outWide.narrow(2, 6), x, w, { transB: true });
  const xs = bk.readSync(x) as Float32Array; // contiguous copy of the view
  const ref = bk.alloc([5, 6]);
  bk.matmul(ref, bk.upload(xs, [5, 8]), w, { transB: true });
  const got = bk.readSync(outWide) as Float32Array;
  const r = bk.readSync(ref) as Float32Array;
  for (let i = 0; i < 5; i++) {
    assert.deepEqual(Array.from(got.subarray(i * 10 + 2, i * 10 + 8)), Array.from(r.subarray(i * 6, i * 6 + 6)));
    assert.equal(got[i * 10], 0);
    assert.equal(got[i * 10 + 9], 0);
  }
});

test('selective scan matches the step-by-step formula of REFERENCE.md §1 (state in and out, views)', () => {
  const [b, l, e, n] = [2, 7, 5, 3];
  const u = rand(b * l * e, 11),
    delta = rand(b * l * e, 12),
    z = rand(b * l * e, 13);
  const A = Float32Array.from(rand(e * n, 14), (v) => -Math.abs(v) * 4 - 0.1);
  const BC = rand(b * l * 2 * n + b * l, 15); // packed (b, l, 1 + 2n): a junk column, then B, then C
  const D = rand(e, 16),
    bias = rand(e, 17),
    h0 = rand(b * e * n, 18);
  const bc = bk.upload(BC.subarray(0, b * l * (2 * n + 1)), [b, l, 2 * n + 1]);
  const y = bk.alloc([b, l, e]);
  const hOut = bk.alloc([b, e, n]);
  bk.selectiveScan({
    y,
    u: bk.upload(u, [b, l, e]),
    delta: bk.upload(delta, [b, l, e]),
    A: bk.upload(A, [e, n]),
    B: bc.narrow(1, n),
    C: bc.narrow(1 + n, n),
    D: bk.upload(D, [e]),
    z: bk.upload(z, [b, l, e]),
    deltaBias: bk.upload(bias, [e]),
    deltaSoftplus: true,
    h0: bk.upload(h0, [b, e, n]),
    hOut,
  });
  const sp = (x: number): number => (x > 20 ? x : Math.log(1 + Math.exp(x)));
  const want = new Float64Array(b * l * e);
  const hWant = new Float64Array(b * e * n);
  for (let bi = 0; bi < b; bi++)
    for (let c = 0; c < e; c++) {
      const h = Array.from({ length: n }, (_, j) => h0[(bi * e + c) * n + j]);
      for (let t = 0; t < l; t++) {
        const row = bi * l + t;
        const dt = sp(delta[row * e + c] + bias[c]);
        let s = 0;
        for (let j = 0; j < n; j++) {
          h[j] = Math.exp(dt * A[c * n + j]) * h[j] + dt * BC[row * (2 * n + 1) + 1 + j] * u[row * e + c];
          s += h[j] * BC[row * (2 * n + 1) + 1 + n + j];
        }
        s += D[c] * u[row * e + c];
        const zz = z[row * e + c];
        want[row * e + c] = s * (zz / (1 + Math.exp(-zz)));
      }
      h.forEach((v, j) => (hWant[(bi * e + c) * n + j] = v));
    }
  assert.ok(maxAbsDiff(bk.readSync(y), want) < 1e-5);
  assert.ok(maxAbsDiff(bk.readSync(hOut), hWant) < 1e-5);
});

test('causal conv1d: zero padding, a carried state, and the state left behind', () => {
  const [b, l, e, k] = [2, 6, 3, 4];
  const x = rand(b * l * e, 21),
    w = rand(e * k, 22),
    bias = rand(e, 23),
    s0 = rand(b * e * k, 24);
  for (const withState of [false, true]) {
    const state = withState ? bk.upload(s0, [b, e, k]) : null;
    const out = bk.alloc([b, l, e]);
    bk.causalConv1d(out, bk.upload(x, [b, l, e]), bk.upload(w, [e, k]), bk.upload(bias, [e]), state, false);
    const want = new Float64Array(b * l * e);
    for (let bi = 0; bi < b; bi++)
      for (let c = 0; c < e; c++) {
        const seq = [
          ...(withState
            ? Array.from({ length: k - 1 }, (_, j) => s0[(bi * e + c) * k + 1 + j])
            : new Array(k - 1).fill(0)),
          ...Array.from({ length: l }, (_, t) => x[(bi * l + t) * e + c]),
        ];
        for (let t = 0; t < l; t++) {
          let s = bias[c];
          for (let j = 0; j < k; j++) s += w[c * k + j] * seq[t + j];
          want[(bi * l + t) * e + c] = s;
        }
        if (state) {
          const st = bk.readSync(state);
          for (let j = 0; j < k; j++) assert.ok(Math.abs(st[(bi * e + c) * k + j] - seq[seq.length - k + j]) < 1e-7);
        }
      }
    assert.ok(maxAbsDiff(bk.readSync(out), want) < 1e-6);
  }
});

test('addRmsnorm adds into the residual stream and normalises', () => {
  const [m, d] = [3, 10];
  const r0 = rand(m * d, 31),
    x = rand(m * d, 32),
    w = rand(d, 33);
  const res = bk.upload(r0, [m, d]);
  const out = bk.alloc([m, d]);
  bk.addRmsnorm(out, res, bk.upload(x, [m, d]), bk.upload(w, [d]), 1e-5);
  const o = bk.readSync(out),
    r = bk.readSync(res);
  for (let i = 0; i < m; i++) {
    let ss = 0;
    for (let c = 0; c < d; c++) {
      const v = r0[i * d + c] + x[i * d + c];
      ss += v * v;
      assert.ok(Math.abs(r[i * d + c] - v) < 1e-6);
    }
    const inv = 1 / Math.sqrt(ss / d + 1e-5);
    for (let c = 0; c < d; c++) assert.ok(Math.abs(o[i * d + c] - (r0[i * d + c] + x[i * d + c]) * inv * w[c]) < 1e-5);
  }
});

test('f16 / bf16 conversions round to nearest even and keep specials', () => {
  assert.equal(f32ToF16Bits(1), 0x3c00);
  assert.equal(f32ToF16Bits(65504), 0x7bff);
  assert.equal(f32ToF16Bits(65520), 0x7c00); // rounds up to inf
  assert.equal(f32ToF16Bits(-0), 0x8000);
  assert.equal(f32ToF16Bits(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie -> even
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
  assert.ok(Number.isNaN(f16ToF32Table()[f32ToF16Bits(NaN)]));
  assert.equal(f32ToBf16Bits(1), 0x3f80);
  assert.equal(bf16BitsToF32(f32ToBf16Bits(3.140625)), 3.140625);
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie -> even
  for (let h = 0; h < 0x7c00; h += 37) assert.equal(f32ToF16Bits(f16ToF32Table()[h]), h);
});

test('kernels name the op and both shapes when shapes disagree', () => {
  const a = bk.alloc([3, 4]),
    w = bk.alloc([5, 6]),
    out = bk.alloc([3, 5]);
  assert.throws(
    () => bk.matmul(out, a, w, { transB: true }),
    (e: unknown) =>
      isMambaError(e, 'SHAPE_MISMATCH') &&
      /matmul/.test(e.message) &&
      /\(3, 4\)/.test(e.message) &&
      /\(5, 6\)/.test(e.message),
  );
  assert.throws(
    () =>
      bk.selectiveScan({
        y: bk.alloc([1, 2, 3]),
        u: bk.alloc([1, 2, 3]),
        delta: bk.alloc([1, 2, 4]),
        A: bk.alloc([3, 2]),
        B: bk.alloc([1, 2, 2]),
        C: bk.alloc([1, 2, 2]),
        D: null,
        z: null,
        deltaBias: null,
        deltaSoftplus: true,
        h0: null,
        hOut: null,
      }),
    (e: unknown) =>
      isMambaError(e, 'SHAPE_MISMATCH') &&
      /selectiveScan: delta has shape \(1, 2, 4\), expected \(1, 2, 3\)/.test(e.message),
  );
  assert.throws(
    () => bk.embedding(bk.alloc([2, 3]), bk.alloc([2]), bk.alloc([5, 3])),
    (e: unknown) => isMambaError(e, 'DTYPE_MISMATCH'),
  );
});
