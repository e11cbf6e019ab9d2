import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAMBA3_GRADIENTS, mamba3ProjWidth, type Mamba3ScanBackwardArgs } from '../../src/backend/contract/mamba3.js';
import { instantiateKernels } from '../../src/backend/cpu/wasm/module.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { rand } from '../helpers/random.js';
import type { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { dims, ts, wa, wasmOnThreads, type Case } from './mamba3-setup.js';

/**
 * Mamba-3's scan backward in WebAssembly (mamba3-backward.wat + the launcher's reduction) against the
 * TypeScript reference (reference/mamba3-scan-backward.ts, f64) on odd sizes: SISO and MIMO (rank 2, 4),
 * odd head counts, head_dim and d_state, groups 1-3, rotation of part or all of the state (pairs or
 * halves), the output norm on and off, batch 2, lengths 1, 7, 77 (9 chunks of 9 recomputed states) and
 * 150 (13 chunks), and a batch of 3 x 1000 tokens that the launcher splits into blocks of rows; every
 * gradient of the contract, which overwrites (the outputs start as garbage).
 * Then 1 and 2 threads bit for bit, and the kernel's f64 sin and cos against Math's.
 * mamba3-backward-simd128.test.ts reruns this file on the plain SIMD128 build.
 */
const CASES: Case[] = [
  { name: 'SISO h 3 p 5 n 7, rope 0.5', dims: dims(3, 5, 7, 1, 1, 1, false), norm: false },
  { name: 'SISO h 3 p 5 n 7 g 3, rope 1, norm', dims: dims(3, 5, 7, 3, 1, 3, false), norm: true },
  { name: 'SISO h 5 p 8 n 8, rope 0.5, norm', dims: dims(5, 8, 8, 1, 1, 2, false), norm: true },
  { name: 'SISO h 4 p 3 n 9 g 2, rope 1', dims: dims(4, 3, 9, 2, 1, 4, false), norm: false },
  { name: 'MIMO R 2 h 3 p 5 n 10, halves 0.5', dims: dims(3, 5, 10, 1, 2, 2, true), norm: false },
  { name: 'MIMO R 2 h 3 p 7 n 6 g 3, halves 1, norm', dims: dims(3, 7, 6, 3, 2, 3, true), norm: true },
  { name: 'MIMO R 4 h 3 p 5 n 8, halves 0.5, norm', dims: dims(3, 5, 8, 1, 4, 2, true), norm: true },
  { name: 'MIMO R 4 h 6 p 9 n 12 g 3, halves 1', dims: dims(6, 9, 12, 3, 4, 6, true), norm: false },
  { name: 'MIMO R 2 h 3 p 5 n 9, pairs 1, norm', dims: dims(3, 5, 9, 1, 2, 4, false), norm: true },
];

type Grads = Record<string, Float32Array>;
const GRADS = MAMBA3_GRADIENTS.map(([g]) => g);

/** Every gradient of one problem (batch b, length l) on backend bk. */
function backward(bk: CpuBackend, c: Case, b: number, l: number, seed: number): Grads {
  const { h, p, n, R } = c.dims;
  const W = mamba3ProjWidth(c.dims);
  const mimo = R > 1;
  const size = (shape: number[]): number => shape.reduce((x, y) => x * y, 1);
  const up = (shape: number[], k: number, scale = 1, offset = 0): Tensor =>
    bk.upload(
      rand(size(shape), seed + k, scale).map((v) => v + offset),
      shape,
    );
  // outputs start as garbage: the contract overwrites them
  const out = (t: Tensor | null): Tensor | null => (t ? bk.upload(rand(t.size, seed + 99, 7), t.shape) : null);
  const proj = up([b, l, W], 1, 1.5);
  const args = {
    g: up([b, l, h * p], 20, 1),
    proj,
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
    dims: c.dims,
  };
  const full: Mamba3ScanBackwardArgs = {
    ...args,
    dProj: out(proj) as Tensor,
    dDtBias: out(args.dtBias) as Tensor,
    dBNorm: out(args.BNorm) as Tensor,
    dCNorm: out(args.CNorm) as Tensor,
    dBBias: out(args.BBias) as Tensor,
    dCBias: out(args.CBias) as Tensor,
    dD: out(args.D) as Tensor,
    dMimoX: out(args.mimoX),
    dMimoZ: out(args.mimoZ),
    dMimoO: out(args.mimoO),
    dNormWeight: out(args.normWeight),
  };
  bk.mamba3ScanBackward(full);
  const r: Grads = {};
  for (const k of GRADS) {
    const t = (full as unknown as Record<string, Tensor | null>)[k];
    if (t) r[k] = bk.readSync(t) as Float32Array;
  }
  return r;
}

/**
 * Per element: |got - want| <= REL |want| + ABS max|want| (the gradient's scale). Both sides compute in f64;
 * the differences are the reference's: it adds the sums over tokens and batch rows (B/C biases and norm
 * weights, mimo_*, D, dt_bias) into f32 outputs term by term, and those sums cancel (elements ~0.1 from terms
 * ~100 over 150 tokens), so their small elements carry ~1e-6 of the gradient's scale of rounding (the kernel
 * keeps them in f64 until stored). Measured worst: 1.5e-6 of the scale at 2 x 150 tokens, 3.8e-6 (dB_bias)
 * at 3 x 1000; elsewhere the f32 rounding of the stored gradient.
 */
const REL = 1e-5,
  ABS = 5e-6;

function compare(got: Grads, want: Grads, what: string): { rel: number; abs: number } {
  let rel = 0,
    abs = 0;
  assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `${what}: the same gradients`);
  for (const k of Object.keys(want)) {
    const g = got[k],
      w = want[k];
    const scale = w.reduce((m, x) => Math.max(m, Math.abs(x)), 0) || 1;
    for (let i = 0; i < w.length; i++) {
      const d = Math.abs(g[i] - w[i]);
      assert.ok(Number.isFinite(g[i]), `${what} ${k}[${i}] is ${g[i]}`);
      assert.ok(d <= REL * Math.abs(w[i]) + ABS * scale, `${what} ${k}[${i}]: ${g[i]} vs ${w[i]} (scale ${scale})`);
      abs = Math.max(abs, d / scale);
      if (Math.abs(w[i]) > 1e-3 * scale) rel = Math.max(rel, d / Math.abs(w[i]));
    }
  }
  return { rel, abs };
}

test('mamba3 scan backward: WebAssembly equals the TypeScript reference (SISO, MIMO, odd sizes, lengths)', () => {
  let rel = 0,
    abs = 0;
  CASES.forEach((c, ci) => {
    for (const l of [1, 7, 77]) {
      const seed = 100 * ci + l;
      const e = compare(backward(wa, c, 2, l, seed), backward(ts, c, 2, l, seed), `${c.name}, l ${l}`);
      rel = Math.max(rel, e.rel);
      abs = Math.max(abs, e.abs);
    }
  });
  for (const c of [CASES[2], CASES[7]]) {
    const e = compare(backward(wa, c, 2, 150, 7), backward(ts, c, 2, 150, 7), `${c.name}, l 150`);
    rel = Math.max(rel, e.rel);
    abs = Math.max(abs, e.abs);
  }
  console.log(
    `worst error: ${rel.toExponential(2)} relative (elements above 1e-3 of the scale), ${abs.toExponential(2)} of the scale`,
  );
});

test('mamba3 scan backward: a long batch runs in blocks of batch rows (partials over 64 MiB) with the same result', () => {
  // 3 rows x 6 heads of partials of 2 l R n f64 (l 1000, R 4, n 64): 4 MiB a unit, so blocks of 2 rows and 1
  const c: Case = {
    name: 'MIMO R 4 h 6 p 4 n 64 g 3, halves 0.5, l 1000',
    dims: dims(6, 4, 64, 3, 4, 16, true),
    norm: true,
  };
  const e = compare(backward(wa, c, 3, 1000, 5), backward(ts, c, 3, 1000, 5), c.name);
  console.log(`${c.name}: ${e.rel.toExponential(2)} relative, ${e.abs.toExponential(2)} of the scale`);
});

test('mamba3 scan backward: 2 threads give exactly the results of one thread', async () => {
  const bk = await wasmOnThreads(2);
  for (const [c, l] of [
    [CASES[2], 77],
    [CASES[7], 33],
    [{ name: 'MIMO R 4 h 5 p 16 n 32', dims: dims(5, 16, 32, 1, 4, 8, true), norm: true }, 40],
  ] as const) {
    const one = backward(wa, c, 2, l, 3),
      two = backward(bk, c, 2, l, 3);
    for (const k of Object.keys(one)) assert.deepEqual(two[k], one[k], `${c.name} l ${l}: ${k}`);
  }
});

test("mamba3 scan backward: the kernel's f64 sin and cos match Math's", () => {
  const K = instantiateKernels(new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true }), true);
  let err = 0;
  for (let i = 0; i <= 20000; i++) {
    const a = (2 * Math.PI * i) / 20000;
    err = Math.max(
      err,
      Math.abs(K.mamba3_bwd_math(0, a) - Math.sin(a)),
      Math.abs(K.mamba3_bwd_math(1, a) - Math.cos(a)),
    );
  }
  console.log(`sin/cos ${err.toExponential(2)} abs`);
  assert.ok(err < 1e-15, `sin/cos absolute error ${err}`);
});
