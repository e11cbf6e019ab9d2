import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpu, CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { missingMixerKernels } from '../../src/backend/contract/mixers.js';
import { isMambaError } from '../../src/errors.js';
import * as S from '../../src/ops/sequence.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { f64, gradcheck, randn, type GradInput } from '../autograd/f64.js';

/**
 * The mixer kernels against naive formulas written here from their definitions (direct convolution,
 * the complex-exponential S4D kernel, the full softmax matrix, rotation by explicit angles), and every
 * op's gradient against central differences on the f64 backend (docs/autograd.md).
 */
const bk = cpu();
const up = (data: Float64Array, shape: number[]): Tensor => bk.upload(Float32Array.from(data), shape);
const read = (t: Tensor): Float32Array => bk.readSync(t) as Float32Array;
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const TOL = 1e-7;
const inp = (name: string, shape: number[], seed: number, scale = 1, requiresGrad = true): GradInput => ({
  name,
  shape,
  data: randn(
    shape.reduce((a, b) => a * b, 1),
    seed,
    scale,
  ),
  requiresGrad,
});
function check(what: string, f: (xs: Tensor[]) => Tensor, inputs: GradInput[], max = 40): void {
  const r = gradcheck(f, inputs, max);
  assert.ok(r.checked > 0, `${what}: nothing checked`);
  assert.ok(r.worst < TOL, `${what}: relative error ${r.worst.toExponential(2)} at ${r.worstWhere}`);
}

/** S4D parameters: A with negative real parts, as S4D-Lin (complex) or S4D-Real. */
function ssmParams(
  e: number,
  N: number,
  seed: number,
  complex: boolean,
): { dt: Float64Array; ARe: Float64Array; AIm: Float64Array; CRe: Float64Array; CIm: Float64Array } {
  const dt = randn(e, seed).map((v) => Math.exp(v - 1.5));
  const ARe = randn(e * N, seed + 1).map((v) => -0.2 - Math.abs(v));
  const AIm = complex ? randn(e * N, seed + 2, 3) : new Float64Array(e * N);
  const CRe = randn(e * N, seed + 3),
    CIm = complex ? randn(e * N, seed + 4) : new Float64Array(e * N);
  return { dt, ARe, AIm, CRe, CIm };
}

function naiveKernel(p: ReturnType<typeof ssmParams>, e: number, N: number, L: number, scale: number): Float64Array {
  const K = new Float64Array(L * e);
  for (let c = 0; c < e; c++)
    for (let n = 0; n < N; n++) {
      const i = c * N + n,
        dt = p.dt[c],
        ar = p.ARe[i],
        ai = p.AIm[i],
        cr = p.CRe[i],
        ci = p.CIm[i];
      for (let l = 0; l < L; l++) {
        // C · (e^{dtA} − 1)/A · e^{l·dtA}, each exponential evaluated directly.
        const e1r = Math.exp(dt * ar) * Math.cos(dt * ai) - 1,
          e1i = Math.exp(dt * ar) * Math.sin(dt * ai);
        const den = ar * ar + ai * ai;
        const qr = (e1r * ar + e1i * ai) / den,
          qi = (e1i * ar - e1r * ai) / den;
        const zr = Math.exp(l * dt * ar) * Math.cos(l * dt * ai),
          zi = Math.exp(l * dt * ar) * Math.sin(l * dt * ai);
        const wr = cr * qr - ci * qi,
          wi = cr * qi + ci * qr;
        K[l * e + c] += scale * (wr * zr - wi * zi);
      }
    }
  return K;
}

test('fftConv equals the direct causal convolution, on a view input and a filter longer than the sequence', () => {
  for (const [b, l, e, lk] of [
    [1, 1, 1, 1],
    [2, 7, 3, 7],
    [2, 13, 4, 20],
    [1, 64, 2, 64],
    [3, 100, 5, 128],
  ] as const) {
    const U = randn(b * l * (e + 2), l + e),
      Kd = randn(lk * e, 3 * l + e);
    const ufull = up(U, [b, l, e + 2]);
    const y = S.fftConv(ufull.narrow(1, e), up(Kd, [lk, e]));
    const want = new Float64Array(b * l * e);
    for (let bi = 0; bi < b; bi++)
      for (let t = 0; t < l; t++)
        for (let c = 0; c < e; c++) {
          let s = 0;
          for (let j = 0; j <= t; j++) s += Kd[(t - j) * e + c] * Math.fround(U[(bi * l + j) * (e + 2) + 1 + c]);
          want[(bi * l + t) * e + c] = s;
        }
    // K is rounded to f32 on upload: compare with a tolerance for that.
    assert.ok(maxDiff(read(y), want) < 1e-4, `b=${b} l=${l} e=${e}: ${maxDiff(read(y), want)}`);
  }
});

test('ssmConvKernel matches the closed form with directly evaluated exponentials (complex and real modes)', () => {
  for (const complex of [true, false]) {
    const [e, N, L] = [3, 4, 50];
    const p = ssmParams(e, N, 11, complex);
    const scale = complex ? 2 : 1;
    const K = f64.read64(
      S.ssmConvKernel(
        {
          dt: f64.upload64(p.dt, [e]),
          ARe: f64.upload64(p.ARe, [e, N]),
          AIm: f64.upload64(p.AIm, [e, N]),
          CRe: f64.upload64(p.CRe, [e, N]),
          CIm: f64.upload64(p.CIm, [e, N]),
          scale,
        },
        L,
      ),
    );
    const want = naiveKernel(p, e, N, L, scale);
    assert.ok(maxDiff(K, want) < 1e-12, `complex=${complex}: ${maxDiff(K, want)}`);
  }
});

test('diagonalSsmScan (recurrent mode) equals fftConv with the ssmConvKernel (convolution mode) plus D·u, and continues from its state', () => {
  for (const complex of [true, false]) {
    const [b, l, e, N] = [2, 37, 3, 5];
    const p = ssmParams(e, N, 21, complex);
    const scale = complex ? 2 : 1;
    const P = {
      dt: f64.upload64(p.dt, [e]),
      ARe: f64.upload64(p.ARe, [e, N]),
      AIm: f64.upload64(p.AIm, [e, N]),
      CRe: f64.upload64(p.CRe, [e, N]),
      CIm: f64.upload64(p.CIm, [e, N]),
      scale,
    };
    const U = randn(b * l * e, 22),
      Dd = randn(e, 23);
    const u = f64.upload64(U, [b, l, e]),
      D = f64.upload64(Dd, [e]);
    const conv = f64.read64(S.fftConv(u, S.ssmConvKernel(P, l)));
    for (let i = 0; i < conv.length; i++) conv[i] += Dd[i % e] * U[i];
    const y = f64.zeros([b, l, e]);
    f64.diagonalSsmScan({ y, u, D, state: null, ...P });
    assert.ok(maxDiff(f64.read64(y), conv) < 1e-10, `complex=${complex}: ${maxDiff(f64.read64(y), conv)}`);
    // Two pieces with a carried state give the same outputs as one pass.
    const cut = 15;
    const state = f64.zeros([b, e, 2 * N]);
    const pieces: number[] = [];
    for (const [t0, len] of [
      [0, cut],
      [cut, l - cut],
    ] as const) {
      const part = new Float64Array(b * len * e);
      for (let bi = 0; bi < b; bi++) part.set(U.subarray((bi * l + t0) * e, (bi * l + t0 + len) * e), bi * len * e);
      const yp = f64.zeros([b, len, e]);
      f64.diagonalSsmScan({ y: yp, u: f64.upload64(part, [b, len, e]), D, state, ...P });
      pieces.push(...f64.read64(yp));
    }
    const joined = new Float64Array(b * l * e);
    for (let bi = 0; bi < b; bi++) {
      joined.set(pieces.slice(bi * cut * e, (bi + 1) * cut * e), bi * l * e);
      joined.set(
        pieces.slice(b * cut * e + bi * (l - cut) * e, b * cut * e + (bi + 1) * (l - cut) * e),
        (bi * l + cut) * e,
      );
    }
    assert.ok(maxDiff(joined, conv) < 1e-10, `pieces: ${maxDiff(joined, conv)}`);
  }
});

function naiveAttention(
  Q: Float64Array,
  K: Float64Array,
  V: Float64Array,
  b: number,
  lq: number,
  lk: number,
  H: number,
  dk: number,
  dv: number,
  scale: number,
  keys: number,
  ldq: number,
  ldk: number,
  ldv: number,
  offq = 0,
  offk = 0,
  offv = 0,
): Float64Array {
  const out = new Float64Array(b * lq * H * dv);
  for (let bi = 0; bi < b; bi++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < lq; i++) {
        const pos = keys - lq + i;
        const s: number[] = [];
        for (let j = 0; j <= pos; j++) {
          let d = 0;
          for (let c = 0; c < dk; c++)
            d += Q[(bi * lq + i) * ldq + offq + h * dk + c] * K[(bi * lk + j) * ldk + offk + h * dk + c];
          s.push(scale * d);
        }
        const mx = Math.max(...s);
        const z = s.reduce((a, v) => a + Math.exp(v - mx), 0);
        for (let c = 0; c < dv; c++) {
          let acc = 0;
          for (let j = 0; j <= pos; j++) acc += (Math.exp(s[j] - mx) / z) * V[(bi * lk + j) * ldv + offv + h * dv + c];
          out[((bi * lq + i) * H + h) * dv + c] = acc;
        }
      }
  return out;
}

test('attention equals the full softmax matrix, for views of one qkv tensor and for a partly filled KV cache', () => {
  const [b, l, H, dh] = [2, 9, 3, 4];
  const w = H * dh;
  const QKV = randn(b * l * 3 * w, 31);
  const qkv = f64.upload64(QKV, [b, l, 3 * w]);
  const out = f64.read64(S.attention(qkv.narrow(0, w), qkv.narrow(w, w), qkv.narrow(2 * w, w), H, 0.5));
  const want = naiveAttention(QKV, QKV, QKV, b, l, l, H, dh, dh, 0.5, l, 3 * w, 3 * w, 3 * w, 0, w, 2 * w);
  assert.ok(maxDiff(out, want) < 1e-12, `full: ${maxDiff(out, want)}`);
  // The last 2 queries against a cache of capacity 14 holding `keys` = l rows.
  const cap = 14,
    lq = 2;
  const Kc = randn(b * cap * w, 32),
    Vc = randn(b * cap * w, 33),
    Qd = randn(b * lq * w, 34);
  const o = f64.zeros([b, lq, w]);
  f64.attention({
    out: o,
    q: f64.upload64(Qd, [b, lq, w]),
    k: f64.upload64(Kc, [b, cap, w]),
    v: f64.upload64(Vc, [b, cap, w]),
    heads: H,
    scale: 0.3,
    keys: l,
  });
  const want2 = naiveAttention(Qd, Kc, Vc, b, lq, cap, H, dh, dh, 0.3, l, w, w, w);
  assert.ok(maxDiff(f64.read64(o), want2) < 1e-12, `cache: ${maxDiff(f64.read64(o), want2)}`);
  assert.throws(
    () =>
      f64.attention({
        out: o,
        q: f64.upload64(Qd, [b, lq, w]),
        k: f64.upload64(Kc, [b, cap, w]),
        v: f64.upload64(Vc, [b, cap, w]),
        heads: H,
        scale: 1,
        keys: cap + 1,
      }),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /keys/.test((e as Error).message),
  );
});

test('rotary rotates each head pair by position · base^(-2i/dh); inverse undoes it', () => {
  const [b, l, H, dh] = [2, 5, 2, 6];
  const X = randn(b * l * H * dh, 41);
  const x = f64.upload64(X, [b, l, H * dh]);
  const y = f64.read64(S.rotary(x, dh, 3, 100));
  for (let r = 0; r < b * l; r++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < dh / 2; i++) {
        const th = (3 + (r % l)) * Math.pow(100, (-2 * i) / dh);
        const a = r * H * dh + h * dh + i,
          c = a + dh / 2;
        assert.ok(Math.abs(y[a] - (X[a] * Math.cos(th) - X[c] * Math.sin(th))) < 1e-12);
        assert.ok(Math.abs(y[c] - (X[a] * Math.sin(th) + X[c] * Math.cos(th))) < 1e-12);
      }
  const back = f64.zeros([b, l, H * dh]);
  f64.rotary(back, f64.upload64(y, [b, l, H * dh]), { headDim: dh, start: 3, base: 100, inverse: true });
  assert.ok(maxDiff(f64.read64(back), X) < 1e-12);
  assert.throws(
    () => S.rotary(x, 5, 0, 100),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT'),
  );
});

test('gradients: fftConv, ssmConvKernel, attention, rotary against central differences', () => {
  check('fftConv', ([u, K]) => S.fftConv(u!.narrow(1, 3), K!), [inp('u', [2, 11, 5], 51), inp('K', [13, 3], 52)]);
  check('fftConv l=1', ([u, K]) => S.fftConv(u!, K!), [inp('u', [3, 1, 2], 53), inp('K', [1, 2], 54)]);
  for (const complex of [true, false]) {
    const [e, N, L] = [3, 4, 17];
    const p = ssmParams(e, N, 61, complex);
    check(
      `ssmConvKernel complex=${complex}`,
      ([dt, ar, ai, cr, ci]) =>
        S.ssmConvKernel({ dt: dt!, ARe: ar!, AIm: ai!, CRe: cr!, CIm: ci!, scale: complex ? 2 : 1 }, L),
      [
        { name: 'dt', shape: [e], data: p.dt },
        { name: 'ARe', shape: [e, N], data: p.ARe },
        { name: 'AIm', shape: [e, N], data: p.AIm, requiresGrad: complex },
        { name: 'CRe', shape: [e, N], data: p.CRe },
        { name: 'CIm', shape: [e, N], data: p.CIm, requiresGrad: complex },
      ],
    );
  }
  const [H, dh] = [2, 3];
  check(
    'attention of qkv views',
    ([qkv]) =>
      S.attention(qkv!.narrow(0, H * dh), qkv!.narrow(H * dh, H * dh), qkv!.narrow(2 * H * dh, H * dh), H, 0.7),
    [inp('qkv', [2, 7, 3 * H * dh], 71)],
    60,
  );
  check('attention, separate inputs', ([q, k, v]) => S.attention(q!, k!, v!, 1, 1.3), [
    inp('q', [1, 5, 4], 72),
    inp('k', [1, 5, 4], 73),
    inp('v', [1, 5, 2], 74),
  ]);
  check('rotary', ([x]) => S.rotary(x!.narrow(1, 8), 4, 2, 10), [inp('x', [2, 3, 9], 81)]);
});

test('a backend without the mixer kernels says which one is missing', () => {
  const plain = new CpuBackend();
  Object.assign(plain, { fftConv: undefined });
  assert.deepEqual(missingMixerKernels(plain), ['fftConv']);
  const u = plain.zeros([1, 2, 1]);
  assert.throws(
    () => S.fftConv(u, plain.zeros([2, 1])),
    (e: unknown) => isMambaError(e, 'UNSUPPORTED') && /fftConv/.test((e as Error).message),
  );
});
