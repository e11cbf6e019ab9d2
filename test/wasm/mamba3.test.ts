import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mamba3ProjWidth, type Mamba3ScanArgs } from '../../src/backend/contract/mamba3.js';
import { instantiateKernels } from '../../src/backend/cpu/wasm/module.js';
import { maxAbsDiff } from '../helpers/fixtures.js';
import { rand } from '../helpers/random.js';
import type { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { dims, ts, wa, wasmOnThreads, type Case } from './mamba3-setup.js';

/**
 * Mamba-3's scan in WebAssembly (mamba3.wat) against the TypeScript reference (reference/mamba3-scan.ts,
 * f64 arithmetic, the state rounded to f32 per token) on odd sizes: SISO and MIMO (rank 2, 4), odd head
 * counts, head_dim and d_state, groups, rotation of a quarter or all of the state (neighbour pairs, or
 * halves), the output norm on and off, batch 2, lengths 1, 7 and 77 (one or two blocks of tokens), from no state or from a
 * random one (angles up to ±200 rad); the decode step (l = 1, token by token) against the sequence form;
 * 1 and 2 threads bit for bit. Then the kernel's exp, log1p, tanh (f64), sin and cos (f32) against Math.
 * mamba3-simd128.test.ts reruns this file on the plain SIMD128 build.
 */
const CASES: Case[] = [
  { name: 'SISO h 3 p 5 n 7, rope 0.5', dims: dims(3, 5, 7, 1, 1, 1, false), norm: false },
  { name: 'SISO h 3 p 5 n 7 g 3, rope 1, norm', dims: dims(3, 5, 7, 3, 1, 3, false), norm: true },
  { name: 'SISO h 5 p 8 n 16, rope 0.5, norm', dims: dims(5, 8, 16, 1, 1, 4, false), norm: true },
  { name: 'SISO h 2 p 3 n 9 g 2, rope 1', dims: dims(2, 3, 9, 2, 1, 4, false), norm: false },
  { name: 'MIMO R 2 h 3 p 5 n 10, halves 0.5', dims: dims(3, 5, 10, 1, 2, 2, true), norm: false },
  { name: 'MIMO R 2 h 3 p 7 n 6 g 3, halves 1, norm', dims: dims(3, 7, 6, 3, 2, 3, true), norm: true },
  { name: 'MIMO R 4 h 3 p 5 n 14, halves 0.5, norm', dims: dims(3, 5, 14, 1, 4, 3, true), norm: true },
  { name: 'MIMO R 4 h 4 p 9 n 12 g 2, halves 1', dims: dims(4, 9, 12, 2, 4, 6, true), norm: false },
  { name: 'MIMO R 2 h 3 p 5 n 9, pairs 1, norm', dims: dims(3, 5, 9, 1, 2, 4, false), norm: true },
  { name: 'SISO h 3 p 6 n 10, halves 0.5', dims: dims(3, 6, 10, 1, 1, 2, true), norm: false },
  // proj rows of 867 floats: the launcher runs 77 tokens in two blocks of tokens (75 + 2)
  { name: 'MIMO R 4 h 9 p 32 n 32, halves 0.5, norm', dims: dims(9, 32, 32, 1, 4, 8, true), norm: true },
];

interface Problem {
  args: Mamba3ScanArgs;
  state: NonNullable<Mamba3ScanArgs['state']>;
}

/** Uploads one problem (batch b, length l); the state random when `fromState`, else zeros. */
function upload(bk: CpuBackend, c: Case, b: number, l: number, fromState: boolean, seed: number): Problem {
  const { h, p, n, R, S } = c.dims;
  const W = mamba3ProjWidth(c.dims);
  const mimo = R > 1;
  const up = (shape: number[], k: number, scale = 1, offset = 0): ReturnType<CpuBackend['upload']> =>
    bk.upload(
      rand(
        shape.reduce((x, y) => x * y, 1),
        seed + k,
        scale,
      ).map((v) => v + offset),
      shape,
    );
  const zeros = (shape: number[]): ReturnType<CpuBackend['upload']> => {
    const t = bk.alloc(shape);
    bk.fill(t, 0);
    return t;
  };
  const state = fromState
    ? {
        theta: up([b, h, S], 10, 200),
        ssm: up([b, h, p, n], 11, 0.5),
        k: up([b, R, h, n], 12, 1),
        x: up([b, h, p], 13, 1),
      }
    : { theta: zeros([b, h, S]), ssm: zeros([b, h, p, n]), k: zeros([b, R, h, n]), x: zeros([b, h, p]) };
  const args: Mamba3ScanArgs = {
    y: bk.alloc([b, l, h * p]),
    proj: up([b, l, W], 1, 1.5),
    dtBias: up([h], 2, 0.5, -0.5),
    BNorm: up([n], 3, 0.3, 1),
    CNorm: up([n], 4, 0.3, 1),
    BBias: up([h, R, n], 5, 0.3, 1),
    CBias: up([h, R, n], 6, 0.3, 1),
    D: up([h], 7, 0.5, 1),
    mimoX: mimo ? up([h, R, p], 8, 0.3, 0.5) : null,
    mimoZ: mimo ? up([h, R, p], 9, 0.3, 1) : null,
    mimoO: mimo ? up([h, R, p], 14, 0.3, 0.5) : null,
    normWeight: c.norm ? up([h * p], 15, 0.3, 1) : null,
    state,
    dims: c.dims,
  };
  return { args, state };
}

const read = (bk: CpuBackend, t: Mamba3ScanArgs['y']): Float32Array => bk.readSync(t) as Float32Array;
const maxAbs = (a: Float32Array): number => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/** y, ssm, k, x and theta after a scan of the whole sequence (with the state or, `noState`, without). */
function scan(bk: CpuBackend, c: Case, b: number, l: number, fromState: boolean, seed: number, noState = false) {
  const { args, state } = upload(bk, c, b, l, fromState, seed);
  bk.mamba3Scan(noState ? { ...args, state: null } : args);
  return {
    y: read(bk, args.y),
    ssm: read(bk, state.ssm),
    k: read(bk, state.k),
    x: read(bk, state.x),
    theta: read(bk, state.theta),
  };
}

/** The largest difference of two angle arrays on the circle. */
function angleDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]) % (2 * Math.PI);
    m = Math.max(m, Math.min(d, 2 * Math.PI - d));
  }
  return m;
}

const TOL = 1e-5;

test('mamba3 scan: WebAssembly equals the TypeScript reference (SISO, MIMO, odd sizes, states, lengths)', () => {
  let worst = 0,
    worstAngle = 0,
    worstWhere = '';
  CASES.forEach((c, ci) => {
    for (const l of [1, 7, 77])
      for (const fromState of [false, true])
        for (const noState of fromState ? [false] : [false, true]) {
          const seed = 100 * ci + l + (fromState ? 50 : 0);
          const want = scan(ts, c, 2, l, fromState, seed, noState),
            got = scan(wa, c, 2, l, fromState, seed, noState);
          const what = `${c.name}, l ${l}, ${noState ? 'no state' : fromState ? 'random state' : 'zero state'}`;
          for (const k of ['y', 'ssm', 'k', 'x'] as const) {
            if (noState && k !== 'y') continue;
            const err = maxAbsDiff(got[k], want[k]) / Math.max(maxAbs(want[k]), 1e-30);
            if (err > worst) [worst, worstWhere] = [err, `${what} ${k}`];
            assert.ok(err <= TOL, `${what}: ${k} max error ${err.toExponential(2)} of the largest value`);
          }
          if (!noState) {
            const ang = angleDiff(got.theta, want.theta);
            worstAngle = Math.max(worstAngle, ang);
            assert.ok(ang <= TOL, `${what}: theta differs by ${ang} rad`);
          }
        }
  });
  console.log(
    `worst error relative to the largest value: ${worst.toExponential(2)} (${worstWhere}); angles ${worstAngle.toExponential(2)} rad`,
  );
});

test('mamba3 scan: the decode step (l = 1, token by token) gives the sequence form', () => {
  for (const c of [CASES[1], CASES[6]]) {
    const l = 7;
    const seq = scan(wa, c, 2, l, true, 9);
    const { args, state } = upload(wa, c, 2, l, true, 9);
    const e = c.dims.h * c.dims.p;
    const proj = read(wa, args.proj);
    const W = proj.length / (2 * l);
    const y = new Float32Array(2 * l * e);
    for (let t = 0; t < l; t++) {
      const row = new Float32Array(2 * W);
      for (let bi = 0; bi < 2; bi++) row.set(proj.subarray((bi * l + t) * W, (bi * l + t + 1) * W), bi * W);
      const step = { ...args, y: wa.alloc([2, 1, e]), proj: wa.upload(row, [2, 1, W]) };
      wa.mamba3Scan(step);
      const ys = read(wa, step.y);
      for (let bi = 0; bi < 2; bi++) y.set(ys.subarray(bi * e, (bi + 1) * e), (bi * l + t) * e);
    }
    // the same kernel either way: the same floats
    assert.deepEqual(y, seq.y, `${c.name}: y`);
    assert.deepEqual(read(wa, state.ssm), seq.ssm, `${c.name}: state`);
    assert.deepEqual(read(wa, state.theta), seq.theta, `${c.name}: theta`);
  }
});

test('mamba3 scan: 2 threads give exactly the results of one thread (sequence and step)', async () => {
  const bk = await wasmOnThreads(2);
  for (const [c, l] of [
    [CASES[2], 77],
    [CASES[7], 33],
    [CASES[10], 77],
    [{ name: 'SISO h 9 p 16 n 32, step', dims: dims(9, 16, 32, 1, 1, 8, false), norm: true }, 1],
    [{ name: 'MIMO R 4 h 5 p 16 n 32, step', dims: dims(5, 16, 32, 1, 4, 8, true), norm: false }, 1],
  ] as const) {
    const one = scan(wa, c, 2, l, true, 3),
      two = scan(bk, c, 2, l, true, 3);
    for (const k of ['y', 'ssm', 'k', 'x', 'theta'] as const)
      assert.deepEqual(two[k], one[k], `${c.name} l ${l}: ${k}`);
  }
});

test("mamba3 scan: the kernel's exp, log1p, tanh (f64), sin and cos (f32) match Math's", () => {
  const K = instantiateKernels(new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true }), true);
  const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);
  let e = 0,
    lg = 0,
    th = 0,
    sc = 0;
  for (let i = 0; i <= 20000; i++) {
    const x = -700 + (1400 * i) / 20000;
    e = Math.max(e, rel(K.mamba3_math(0, x), Math.exp(x)));
    const y = Math.exp(-40 + (60 * i) / 20000); // softplus's log1p(e^x), x in [-40, 20]
    lg = Math.max(lg, rel(K.mamba3_math(1, y), Math.log1p(y)));
    const u = -25 + (50 * i) / 20000;
    th = Math.max(th, Math.abs(K.mamba3_math(2, u) - Math.tanh(u)));
    // the angles reach sin and cos reduced to [0, 2π) (the reference's θ mod 2π, in f64), as f32 values
    const a = Math.fround((2 * Math.PI * i) / 20000);
    sc = Math.max(sc, Math.abs(K.mamba3_math(3, a) - Math.sin(a)), Math.abs(K.mamba3_math(4, a) - Math.cos(a)));
  }
  assert.equal(K.mamba3_math(0, -800), 0);
  assert.equal(K.mamba3_math(1, 0), 0);
  console.log(
    `exp ${e.toExponential(2)} rel, log1p ${lg.toExponential(2)} rel, tanh ${th.toExponential(2)} abs, sin/cos ${sc.toExponential(2)} abs`,
  );
  assert.ok(e < 1e-14, `exp relative error ${e}`);
  assert.ok(lg < 1e-14, `log1p relative error ${lg}`);
  assert.ok(th < 1e-15, `tanh absolute error ${th}`);
  assert.ok(sc < 2.5e-7, `sin/cos absolute error ${sc}`); // f32: 2 ulp of 1
});
