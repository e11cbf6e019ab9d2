import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as SSD from '../../src/ops/ssd.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { isMambaError } from '../../src/errors.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { f64, gradcheck, randn, type GradInput } from './f64.js';

/**
 * Mamba-2's SSD scan and gated norm against central differences in f64 (the scheme of ops.test.ts):
 * odd sizes (3 heads of head_dim 3 in groups, d_state 3), x, dt, B, C as column windows of one
 * projection as the mixer passes them, forward chunk lengths and backward recompute chunks that do not
 * divide l, with and without h0, D, dt_bias, softplus and a dt clamp that bites.
 */
const TOL = 1e-7;
const inp = (name: string, shape: number[], seed: number, scale = 1): GradInput => ({
  name,
  shape,
  data: randn(
    shape.reduce((a, b) => a * b, 1),
    seed,
    scale,
  ),
});
function check(what: string, f: (xs: Tensor[]) => Tensor, inputs: GradInput[], max = 40): void {
  const r = gradcheck(f, inputs, max);
  assert.ok(r.checked > 0, `${what}: nothing checked`);
  assert.ok(r.worst < TOL, `${what}: relative error ${r.worst.toExponential(2)} at ${r.worstWhere}`);
}

const [b, l, h, p, n] = [2, 11, 6, 3, 3];
for (const g of [1, 3]) {
  const e = h * p,
    W = e + 2 * g * n + h + 1; // one unused column, so every window is a strided view
  const inputs = (): GradInput[] => [
    inp('proj', [b, l, W], 40 + g),
    { name: 'A', shape: [h], data: randn(h, 41).map((v) => -Math.exp(v)) },
    inp('D', [h], 42),
    inp('dtBias', [h], 43),
    inp('h0', [b, h, p, n], 44),
  ];
  const scan = (xs: Tensor[], o: { chunk: number; back: number; h0: boolean; limit?: [number, number] }): Tensor => {
    const [proj, A, D, bias, h0] = xs;
    return SSD.ssdScan({
      x: proj.narrow(1, e),
      B: proj.narrow(1 + e, g * n),
      C: proj.narrow(1 + e + g * n, g * n),
      dt: proj.narrow(1 + e + 2 * g * n, h),
      A,
      D,
      dtBias: bias,
      dtSoftplus: true,
      dtLimit: o.limit ?? [0, Infinity],
      nGroups: g,
      chunkSize: o.chunk,
      h0: o.h0 ? h0 : null,
      backwardChunk: o.back,
    });
  };
  test(`ssdScan (groups ${g}): x, dt, A, B, C, D, dt_bias and h0 match central differences`, () => {
    for (const [chunk, back] of [
      [4, 1],
      [5, 3],
      [64, 4],
      [3, 64],
    ])
      check(`chunk ${chunk} recompute ${back}`, (xs) => scan(xs, { chunk, back, h0: true }), inputs());
    check('no h0', (xs) => scan(xs.slice(0, 4), { chunk: 4, back: 5, h0: false }), inputs().slice(0, 4));
    // dt = softplus(raw + bias) spans about (0.2, 2): the clamp cuts both ends.
    check('dt clamped', (xs) => scan(xs, { chunk: 4, back: 4, h0: true, limit: [0.5, 1.2] }), inputs());
  });
}

test('ssdScan without D, dt_bias or softplus', () => {
  const [e, g] = [h * p, 2];
  check(
    'plain',
    ([x, dt, A, B, C]) =>
      SSD.ssdScan({
        x,
        dt,
        A,
        B,
        C,
        D: null,
        dtBias: null,
        dtSoftplus: false,
        dtLimit: [-Infinity, Infinity],
        nGroups: g,
        chunkSize: 4,
        backwardChunk: 3,
      }),
    [
      inp('x', [b, l, e], 50),
      { name: 'dt', shape: [b, l, h], data: randn(b * l * h, 51).map((v) => 0.3 + 0.2 * v) },
      { name: 'A', shape: [h], data: randn(h, 52).map((v) => -Math.exp(v)) },
      inp('B', [b, l, g * n], 53),
      inp('C', [b, l, g * n], 54),
    ],
  );
});

test('gatedRmsnorm: x, z and weight, gate first and norm first, one group and several', () => {
  const [m, e] = [5, 12];
  for (const normBeforeGate of [false, true])
    for (const groupSize of [12, 4])
      check(
        `normBeforeGate ${normBeforeGate} groupSize ${groupSize}`,
        ([x, z, w]) => SSD.gatedRmsnorm(x, z.narrow(1, e), w, { groupSize, eps: 1e-5, normBeforeGate }),
        [inp('x', [1, m, e], 60), inp('zz', [1, m, e + 3], 61, 2), inp('w', [e], 62)],
      );
});

test('gatedRmsnorm: the recorded composition equals the fused kernel', () => {
  const [m, e] = [4, 10];
  const x = f64.upload64(randn(m * e, 70), [m, e]),
    z = f64.upload64(randn(m * e, 71), [m, e]),
    w = f64.upload64(randn(e, 72), [e]);
  for (const normBeforeGate of [false, true]) {
    const o = { groupSize: 5, eps: 1e-5, normBeforeGate };
    const fused = f64.read64(SSD.gatedRmsnorm(x, z, w, o));
    w.requiresGrad = true;
    const composed = f64.read64(SSD.gatedRmsnorm(x, z, w, o));
    w.requiresGrad = false;
    for (let i = 0; i < fused.length; i++) assert.ok(Math.abs(fused[i] - composed[i]) < 1e-12, `element ${i}`);
  }
});

test('ssdScanBackward: the f32 kernel agrees with the f64 one within f32 rounding; bad arguments are named', () => {
  const g = 3,
    e = h * p;
  const data = {
    x: randn(b * l * e, 80),
    dt: randn(b * l * h, 81),
    A: randn(h, 82).map((v) => -Math.exp(v)),
    B: randn(b * l * g * n, 83),
    C: randn(b * l * g * n, 84),
    D: randn(h, 85),
    dtBias: randn(h, 86),
    h0: randn(b * h * p * n, 87),
    dy: randn(b * l * e, 88),
  };
  const shapes = {
    x: [b, l, e],
    dt: [b, l, h],
    A: [h],
    B: [b, l, g * n],
    C: [b, l, g * n],
    D: [h],
    dtBias: [h],
    h0: [b, h, p, n],
    dy: [b, l, e],
  };
  const grads = { dx: 'x', dDt: 'dt', dA: 'A', dB: 'B', dC: 'C', dD: 'D', dDtBias: 'dtBias', dh0: 'h0' } as const;
  const run = (bk: typeof f64 | ReturnType<typeof cpu>, read: (t: Tensor) => Float64Array) => {
    const t = Object.fromEntries(
      Object.entries(data).map(([k, v]) => [k, bk.upload(Float32Array.from(v), shapes[k as keyof typeof shapes])]),
    ) as Record<keyof typeof data, Tensor>;
    const out = Object.fromEntries(Object.entries(grads).map(([k, v]) => [k, bk.alloc(shapes[v])])) as Record<
      keyof typeof grads,
      Tensor
    >;
    bk.ssdScanBackward({
      ...t,
      ...out,
      dtSoftplus: true,
      dtLimit: [0, Infinity],
      nGroups: g,
      chunkSize: 4,
      chunk: 5,
    });
    return Object.fromEntries(Object.keys(grads).map((k) => [k, read(out[k as keyof typeof grads])]));
  };
  const want = run(f64, (t) => f64.read64(t));
  const bk = cpu();
  const got = run(bk, (t) => Float64Array.from(bk.readSync(t)));
  for (const k of Object.keys(grads)) {
    let scale = 0,
      err = 0;
    for (let i = 0; i < want[k].length; i++) {
      scale = Math.max(scale, Math.abs(want[k][i]));
      err = Math.max(err, Math.abs(got[k][i] - want[k][i]));
    }
    assert.ok(err / scale < 1e-5, `${k}: relative error ${err / scale}`);
  }
  assert.throws(
    () =>
      bk.ssdScanBackward({
        dy: bk.alloc([1, 2, 6]),
        x: bk.alloc([1, 2, 6]),
        dt: bk.alloc([1, 2, 2]),
        A: bk.alloc([2]),
        B: bk.alloc([1, 2, 2]),
        C: bk.alloc([1, 2, 2]),
        D: bk.alloc([2]),
        dtBias: null,
        h0: null,
        dtSoftplus: true,
        dtLimit: [0, Infinity],
        nGroups: 1,
        chunkSize: 4,
        dx: bk.alloc([1, 2, 6]),
        dDt: bk.alloc([1, 2, 2]),
        dA: bk.alloc([2]),
        dB: bk.alloc([1, 2, 2]),
        dC: bk.alloc([1, 2, 2]),
        dD: null,
        dDtBias: null,
        dh0: null,
      }),
    (err: unknown) =>
      isMambaError(err) && err.code === 'BAD_ARGUMENT' && /dD must be given exactly when D is/.test(err.message),
  );
});
