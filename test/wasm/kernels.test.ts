import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { MATVEC_MAX_M } from '../../src/backend/cpu/wasm/launch.js';
import { f32ToBf16Bits, f32ToF16Bits, type DType } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { maxAbsDiff } from '../helpers/fixtures.js';
import { rand } from '../helpers/random.js';

/**
 * Every WebAssembly kernel against the TypeScript reference kernels (the specification) on odd
 * shapes: lengths that are not multiples of the vector width (4) or of the unrolled step (8), single
 * rows and columns, views (narrowed inputs with ld > cols), every weight dtype.
 */
const ts = new CpuBackend({ kernels: 'ts' });
const wa = new CpuBackend({ kernels: 'wasm' });
assert.equal(wa.kernels, 'wasm', 'this engine runs the WebAssembly kernels');

/** The same values on both backends, in a given dtype (f16/bf16 rounded, q8/q4 quantised by upload). */
function put(data: Float32Array, shape: number[], dtype: DType = 'f32'): [Tensor, Tensor] {
  if (dtype === 'f16' || dtype === 'bf16') {
    const bits = Uint16Array.from(data, (v) => (dtype === 'f16' ? f32ToF16Bits(v) : f32ToBf16Bits(v)));
    return [ts.upload(bits, shape, dtype), wa.upload(bits, shape, dtype)];
  }
  return [ts.upload(data, shape, dtype), wa.upload(data, shape, dtype)];
}

/** A view of columns [c0, c0 + n) of a wider tensor, on both backends. */
function putView(rows: number, width: number, c0: number, n: number, seed: number): [Tensor, Tensor] {
  const [a, b] = put(rand(rows * width, seed), [rows, width]);
  return [a.narrow(c0, n), b.narrow(c0, n)];
}

function close(got: Float32Array | Int32Array, want: Float32Array | Int32Array, tol: number, what: string): void {
  const err = maxAbsDiff(got, want);
  assert.ok(err <= tol, `${what}: max abs error ${err} > ${tol}`);
}

/**
 * The q8 and q4 products in the Linear layout (transB) give the reference's bits (int8 activations,
 * reference/int8-activations.ts), except q8's decode product (matvec_q8), which sums the same block
 * products in another order (its lanes, then across them): f32 rounding only.
 */
function exactQ(dt: DType, m: number, transA: boolean, transB: boolean): boolean {
  return transB && (dt === 'q4' || (dt === 'q8' && (transA || m >= MATVEC_MAX_M)));
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 5],
  [1, 8, 4],
  [1, 37, 11],
  [1, 64, 9],
  [2, 33, 13],
  [3, 17, 6],
  [MATVEC_MAX_M - 1, 19, 21],
  [MATVEC_MAX_M, 23, 17],
  [9, 1, 7],
  [13, 70, 1],
  [6, 300, 131],
  [21, 257, 20],
];

test('matmul (Linear layout, transB): every weight dtype, bias, accumulate, matvec and gemm sizes', () => {
  for (const [m, q, p] of SHAPES) {
    for (const dt of ['f32', 'f16', 'bf16', 'q8', 'q4'] as const) {
      for (const withBias of [false, true])
        for (const accumulate of [false, true]) {
          const [xa, xb] = put(rand(m * q, 1 + m + q), [m, q]);
          const [wa_, wb] = put(rand(p * q, 2 + p), [p, q], dt);
          const [ba, bb] = put(rand(p, 3), [p]);
          const o0 = rand(m * p, 4);
          const [oa, ob] = put(o0, [m, p]);
          const opts = (b: Tensor) => ({ transB: true, bias: withBias ? b : null, accumulate });
          ts.matmul(oa, xa, wa_, opts(ba));
          wa.matmul(ob, xb, wb, opts(bb));
          const want = ts.readSync(oa) as Float32Array;
          const tol = exactQ(dt, m, false, true) ? 0 : 2e-6 * Math.sqrt(q) * (1 + Math.max(...want.map(Math.abs)));
          close(wa.readSync(ob), want, tol, `m${m} q${q} p${p} ${dt} bias${withBias} acc${accumulate}`);
        }
    }
  }
});

test('matmul: every transposition (gemm path and its packing of each dtype)', () => {
  for (const [m, q, p] of [
    [1, 5, 3],
    [4, 9, 8],
    [11, 33, 19],
    [9, 130, 40],
  ] as const) {
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const dt of ['f32', 'f16', 'bf16', 'q8', 'q4'] as const) {
          const [aa, ab] = put(rand(m * q, 7 + m), transA ? [q, m] : [m, q]);
          const [ba, bb] = put(rand(q * p, 8 + p), transB ? [p, q] : [q, p], dt);
          const [oa, ob] = put(rand(m * p, 9), [m, p]);
          ts.matmul(oa, aa, ba, { transA, transB, accumulate: true });
          wa.matmul(ob, ab, bb, { transA, transB, accumulate: true });
          const want = ts.readSync(oa) as Float32Array;
          const tol = exactQ(dt, m, transA, transB) ? 0 : 2e-6 * Math.sqrt(q) * (1 + Math.max(...want.map(Math.abs)));
          close(wa.readSync(ob), want, tol, `m${m} q${q} p${p} tA${transA} tB${transB} ${dt}`);
        }
  }
});

test('matmul: views as inputs and output (ld > cols), for matvec and gemm', () => {
  for (const m of [1, 3, 12]) {
    const q = 21,
      p = 10;
    const [xa, xb] = putView(m, 40, 5, q, 11); // x: columns 5..25 of a (m, 40) tensor
    const [wa_, wb] = put(rand(p * q, 12), [p, q], 'f16');
    const [oa0, ob0] = put(rand(m * 30, 13), [m, 30]);
    const oa = oa0.narrow(7, p),
      ob = ob0.narrow(7, p);
    ts.matmul(oa, xa, wa_, { transB: true });
    wa.matmul(ob, xb, wb, { transB: true });
    close(wa.readSync(ob0), ts.readSync(oa0), 1e-5, `views m${m}`);
  }
});

test('matmul f16: inputs beyond the 2^14 pre-scaling range keep full precision', () => {
  for (const big of [1, 3e4, 1e8]) {
    const [m, q, p] = [2, 45, 7];
    const X = rand(m * q, 21, big);
    const [xa, xb] = put(X, [m, q]);
    const [wa_, wb] = put(rand(p * q, 22), [p, q], 'f16');
    const [oa, ob] = put(new Float32Array(m * p), [m, p]);
    ts.matmul(oa, xa, wa_, { transB: true });
    wa.matmul(ob, xb, wb, { transB: true });
    const want = ts.readSync(oa) as Float32Array;
    close(wa.readSync(ob), want, 2e-6 * big * Math.sqrt(q) * 2, `|x| ~ ${big}`);
  }
});

test('selective scan: odd channels and states, every optional operand, l = 1 and longer, B/C as views', () => {
  for (const [b, l, e, n] of [
    [1, 1, 1, 1],
    [1, 1, 6, 7],
    [2, 1, 13, 16],
    [3, 1, 7, 8],
    [1, 9, 5, 3],
    [2, 13, 11, 7],
    [1, 40, 36, 16],
  ] as const) {
    for (const variant of [0, 1, 2, 3]) {
      const withD = variant !== 1,
        withZ = variant !== 2,
        withBias = variant !== 3,
        softplus = variant !== 1;
      const inplace = variant % 2 === 0;
      const u = put(rand(b * l * e, 31), [b, l, e]);
      const delta = put(rand(b * l * e, 32, 2), [b, l, e]);
      const A = put(
        Float32Array.from(rand(e * n, 33), (v) => -Math.exp(v)),
        [e, n],
      );
      const [dbA, dbB] = putView(b * l, 2 * n + 5, 5, 2 * n, 34); // B then C, columns of a wider (b*l, 2n + 5)
      const Bv: [Tensor, Tensor] = [dbA.narrow(0, n).reshape([b, l, n]), dbB.narrow(0, n).reshape([b, l, n])];
      const Cv: [Tensor, Tensor] = [dbA.narrow(n, n).reshape([b, l, n]), dbB.narrow(n, n).reshape([b, l, n])];
      const D = put(rand(e, 35), [e]);
      const z = put(rand(b * l * e, 36, 3), [b, l, e]);
      const bias = put(rand(e, 37), [e]);
      const h0 = put(rand(b * e * n, 38), [b, e, n]);
      const hOut = inplace ? h0 : put(new Float32Array(b * e * n), [b, e, n]);
      const y = put(new Float32Array(b * l * e), [b, l, e]);
      for (const k of [0, 1] as const) {
        const bk = k === 0 ? ts : wa;
        bk.selectiveScan({
          y: y[k],
          u: u[k],
          delta: delta[k],
          A: A[k],
          B: Bv[k],
          C: Cv[k],
          D: withD ? D[k] : null,
          z: withZ ? z[k] : null,
          deltaBias: withBias ? bias[k] : null,
          deltaSoftplus: softplus,
          h0: variant === 3 ? null : h0[k],
          hOut: hOut[k],
        });
      }
      const what = `b${b} l${l} e${e} n${n} variant ${variant}`;
      // relative: without softplus, negative dt makes h grow by up to e^5 a step
      const rel = (w: Float32Array | Int32Array): number =>
        2e-5 * Math.sqrt(l) * (1 + Math.max(...Array.from(w, Math.abs)));
      const wy = ts.readSync(y[0]),
        wh = ts.readSync(hOut[0]);
      close(wa.readSync(y[1]), wy, rel(wy), `${what}: y`);
      close(wa.readSync(hOut[1]), wh, rel(wh), `${what}: state`);
    }
  }
});

test('selective scan backward: odd channels and states, every optional operand and output, chunks shorter and longer than l, B/C as views', () => {
  for (const [b, l, e, n, chunk] of [
    [1, 1, 1, 1, 64],
    [1, 1, 6, 7, 64],
    [2, 5, 13, 16, 2],
    [1, 9, 5, 3, 4],
    [3, 13, 11, 7, 5],
    [2, 40, 36, 16, 16],
    [1, 70, 8, 4, 64],
  ] as const) {
    for (const variant of [0, 1, 2, 3]) {
      const withD = variant !== 1,
        withZ = variant !== 2,
        withBias = variant !== 3,
        softplus = variant !== 1;
      const withH0 = variant !== 3,
        wantDh0 = variant === 0;
      const u = put(rand(b * l * e, 41), [b, l, e]);
      const delta = put(rand(b * l * e, 42, 2), [b, l, e]);
      const A = put(
        Float32Array.from(rand(e * n, 43), (v) => -Math.exp(v)),
        [e, n],
      );
      const [dbA, dbB] = putView(b * l, 2 * n + 5, 5, 2 * n, 44);
      const Bv: [Tensor, Tensor] = [dbA.narrow(0, n).reshape([b, l, n]), dbB.narrow(0, n).reshape([b, l, n])];
      const Cv: [Tensor, Tensor] = [dbA.narrow(n, n).reshape([b, l, n]), dbB.narrow(n, n).reshape([b, l, n])];
      const D = put(rand(e, 45), [e]);
      const z = put(rand(b * l * e, 46, 3), [b, l, e]);
      const bias = put(rand(e, 47), [e]);
      const h0 = put(rand(b * e * n, 48), [b, e, n]);
      const dy = put(rand(b * l * e, 49), [b, l, e]);
      const outs = [0, 1].map((k) => {
        const bk = k === 0 ? ts : wa;
        const o = {
          du: bk.alloc([b, l, e]),
          dDelta: bk.alloc([b, l, e]),
          dA: bk.alloc([e, n]),
          dB: bk.alloc([b, l, n]),
          dC: bk.alloc([b, l, n]),
          dD: withD ? bk.alloc([e]) : null,
          dz: withZ ? bk.alloc([b, l, e]) : null,
          dDeltaBias: withBias ? bk.alloc([e]) : null,
          dh0: wantDh0 ? bk.alloc([b, e, n]) : null,
        };
        bk.selectiveScanBackward({
          dy: dy[k],
          u: u[k],
          delta: delta[k],
          A: A[k],
          B: Bv[k],
          C: Cv[k],
          D: withD ? D[k] : null,
          z: withZ ? z[k] : null,
          deltaBias: withBias ? bias[k] : null,
          deltaSoftplus: softplus,
          h0: withH0 ? h0[k] : null,
          ...o,
          chunk,
        });
        return o;
      });
      for (const key of ['du', 'dDelta', 'dA', 'dB', 'dC', 'dD', 'dz', 'dDeltaBias', 'dh0'] as const) {
        const want = outs[0][key],
          got = outs[1][key];
        if (!want || !got) continue;
        const w = ts.readSync(want);
        // relative to the largest gradient: f32 sums against the reference's f64 ones
        close(
          wa.readSync(got),
          w,
          1e-5 * Math.sqrt(l) * (1 + Math.max(...Array.from(w, Math.abs))),
          `b${b} l${l} e${e} n${n} chunk ${chunk} variant ${variant}: ${key}`,
        );
      }
    }
  }
});

test('cross-entropy and its gradient: odd vocabularies, ignored rows, logits as a view, mean and sum, out-of-range targets', () => {
  for (const [m, V] of [
    [1, 1],
    [3, 7],
    [5, 33],
    [4, 1030],
    [9, 4096],
  ] as const) {
    const [la, lb] = putView(m, V + 3, 2, V, 51);
    const logits: [Tensor, Tensor] = [la, lb];
    const ids = Int32Array.from({ length: m }, (_, i) => (i % 3 === 2 ? -1 : (i * 7919) % V));
    const targets = [ts.upload(ids, [m], 'i32'), wa.upload(ids, [m], 'i32')];
    for (const reduction of ['mean', 'sum'] as const) {
      const out = [ts.alloc([1]), wa.alloc([1])],
        g = [ts.upload(Float32Array.of(0.7), [1]), wa.upload(Float32Array.of(0.7), [1])];
      const d = [ts.alloc([m, V]), wa.alloc([m, V])];
      for (const k of [0, 1] as const) {
        const bk = k === 0 ? ts : wa;
        bk.crossEntropy(out[k], logits[k], targets[k], reduction);
        bk.crossEntropyBackward(d[k], logits[k], targets[k], g[k], reduction);
      }
      const what = `m${m} V${V} ${reduction}`;
      const loss = ts.readSync(out[0])[0];
      close(wa.readSync(out[1]), ts.readSync(out[0]), 2e-6 * m * (1 + Math.abs(loss)), `${what}: loss`);
      close(wa.readSync(d[1]), ts.readSync(d[0]), 2e-7, `${what}: gradient`);
    }
  }
  const bad = wa.upload(Int32Array.of(0, 9), [2], 'i32');
  assert.throws(
    () => wa.crossEntropy(wa.alloc([1]), wa.alloc([2, 9]), bad, 'mean'),
    (e: Error & { code?: string }) => e.code === 'TOKEN_OUT_OF_RANGE',
  );
  assert.throws(
    () => wa.crossEntropyBackward(wa.alloc([2, 9]), wa.alloc([2, 9]), bad, wa.upload(Float32Array.of(1), [1]), 'mean'),
    (e: Error & { code?: string }) => e.code === 'TOKEN_OUT_OF_RANGE',
  );
});

test('conv1d: odd channels, widths 3 and 4, with and without state, bias and SiLU, l = 1 and longer', () => {
  for (const [b, l, e, k] of [
    [1, 1, 1, 4],
    [1, 1, 7, 4],
    [3, 1, 13, 4],
    [2, 1, 13, 3],
    [1, 9, 5, 4],
    [2, 2, 10, 4],
    [1, 33, 18, 3],
  ] as const) {
    for (const variant of [0, 1, 2]) {
      const withState = variant !== 1,
        withBias = variant !== 2,
        silu = variant !== 2;
      const [xa, xb] = putView(b * l, e + 3, 2, e, 41);
      const x: [Tensor, Tensor] = [xa.reshape([b, l, e]), xb.reshape([b, l, e])];
      const w = put(rand(e * k, 42), [e, k]);
      const bias = put(rand(e, 43), [e]);
      const state = put(rand(b * e * k, 44), [b, e, k]);
      const out = put(new Float32Array(b * l * e), [b, l, e]);
      for (const i of [0, 1] as const)
        (i === 0 ? ts : wa).causalConv1d(
          out[i],
          x[i],
          w[i],
          withBias ? bias[i] : null,
          withState ? state[i] : null,
          silu,
        );
      const what = `b${b} l${l} e${e} k${k} variant ${variant}`;
      close(wa.readSync(out[1]), ts.readSync(out[0]), 1e-5, `${what}: out`);
      close(wa.readSync(state[1]), ts.readSync(state[0]), 0, `${what}: state`);
    }
  }
});

test('conv1d backward: odd channels, widths 1, 3 and 4, with and without bias and SiLU, l shorter than the width, x and g as views', () => {
  for (const [b, l, e, k] of [
    [1, 1, 1, 4],
    [2, 2, 6, 4],
    [1, 9, 5, 3],
    [3, 13, 11, 1],
    [2, 40, 36, 4],
  ] as const) {
    for (const variant of [0, 1, 2]) {
      const withBias = variant !== 1,
        silu = variant !== 2;
      const x = putView(b * l, e + 3, 1, e, 61),
        g = putView(b * l, e + 2, 2, e, 62);
      const w = put(rand(e * k, 63), [e, k]),
        bias = put(rand(e, 64), [e]);
      const outs = [0, 1].map((i) => {
        const bk = i === 0 ? ts : wa;
        const o = { dx: bk.alloc([b, l, e]), dWeight: bk.alloc([e, k]), dBias: withBias ? bk.alloc([e]) : null };
        bk.causalConv1dBackward({
          ...o,
          g: g[i].reshape([b, l, e]),
          x: x[i].reshape([b, l, e]),
          weight: w[i],
          bias: withBias ? bias[i] : null,
          silu,
        });
        return o;
      });
      for (const key of ['dx', 'dWeight', 'dBias'] as const) {
        const want = outs[0][key],
          got = outs[1][key];
        if (!want || !got) continue;
        const wv = ts.readSync(want);
        close(
          wa.readSync(got),
          wv,
          1e-6 * Math.sqrt(b * l) * (1 + Math.max(...Array.from(wv, Math.abs))),
          `b${b} l${l} e${e} k${k} variant ${variant}: ${key}`,
        );
      }
    }
  }
});

test('addRmsnorm: odd widths, with and without the residual add, views', () => {
  for (const [m, d] of [
    [1, 1],
    [1, 7],
    [3, 13],
    [2, 64],
    [5, 769],
  ] as const) {
    for (const withX of [false, true]) {
      const res = put(rand(m * d, 51, 3), [m, d]);
      const [xa, xb] = putView(m, d + 4, 3, d, 52);
      const w = put(rand(d, 53), [d]);
      const out = put(new Float32Array(m * d), [m, d]);
      ts.addRmsnorm(out[0], res[0], withX ? xa : null, w[0], 1e-5);
      wa.addRmsnorm(out[1], res[1], withX ? xb : null, w[1], 1e-5);
      close(wa.readSync(res[1]), ts.readSync(res[0]), 0, `m${m} d${d} x${withX}: residual`);
      close(wa.readSync(out[1]), ts.readSync(out[0]), 1e-5, `m${m} d${d} x${withX}: out`);
    }
  }
});

test('argmax: odd widths, ties (first index wins), NaN handling as the reference', () => {
  const cases: Float32Array[] = [
    Float32Array.of(1),
    Float32Array.of(3, 1, 3),
    rand(13, 61),
    rand(50280, 62),
    Float32Array.of(0, 5, 2, 5, 5, 1, 0, 5, 4),
    Float32Array.of(NaN, 1, 2),
    Float32Array.of(1, NaN, 7, 7, NaN),
  ];
  for (const xs of cases) {
    for (const rows of [1, 3]) {
      const data = new Float32Array(rows * xs.length);
      for (let r = 0; r < rows; r++)
        data.set(
          xs.map((v, i) => (i === (r * 5) % xs.length && r > 0 ? v + 1 : v)),
          r * xs.length,
        );
      const x = put(data, [rows, xs.length]);
      const o = [ts.zeros([rows], 'i32'), wa.zeros([rows], 'i32')];
      ts.argmax(o[0], x[0]);
      wa.argmax(o[1], x[1]);
      assert.deepEqual(Array.from(wa.readSync(o[1])), Array.from(ts.readSync(o[0])), `cols ${xs.length} rows ${rows}`);
    }
  }
});

test('embedding: every table dtype, odd widths', () => {
  for (const dt of ['f32', 'f16', 'bf16', 'q8', 'q4'] as const) {
    for (const d of [1, 7, 40, 77]) {
      const V = 19;
      const table = put(rand(V * d, 71), [V, d], dt);
      const idv = Int32Array.of(3, 0, 18, 3, 7);
      const it = [ts.upload(idv, [5], 'i32'), wa.upload(idv, [5], 'i32')];
      const out = put(new Float32Array(5 * d), [5, d]);
      ts.embedding(out[0], it[0], table[0]);
      wa.embedding(out[1], it[1], table[1]);
      close(wa.readSync(out[1]), ts.readSync(out[0]), 0, `${dt} d${d}`);
    }
  }
});

test('binary ops: add, sub, mul, div, with a broadcast row, odd widths', () => {
  for (const op of ['add', 'sub', 'mul', 'div'] as const) {
    for (const [rows, cols] of [
      [1, 1],
      [3, 7],
      [4, 33],
    ] as const) {
      for (const bcast of [false, true]) {
        const a = put(rand(rows * cols, 81), [rows, cols]);
        const b = put(
          Float32Array.from(rand(bcast ? cols : rows * cols, 82), (v) => v + 2),
          bcast ? [cols] : [rows, cols],
        );
        const o = put(new Float32Array(rows * cols), [rows, cols]);
        ts.binary(op, o[0], a[0], b[0]);
        wa.binary(op, o[1], a[1], b[1]);
        close(wa.readSync(o[1]), ts.readSync(o[0]), 0, `${op} ${rows}x${cols} bcast ${bcast}`);
      }
    }
  }
});
