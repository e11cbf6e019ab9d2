import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AttentionArgs } from '../../src/backend/contract/mixers.js';
import type { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { rand } from '../helpers/random.js';
import { ts, wa, wasmOnThreads } from '../helpers/wasm-backends.js';

/**
 * Causal attention in WebAssembly (attention.wat) against the TypeScript reference
 * (reference/attention.ts, f64 sums) on odd sizes: head widths that are not multiples of the vector
 * width (4), dk ≠ dv, grouped-query attention (G < H), batch > 1, prefill (lq = keys) and decode
 * over a cache with spare capacity (keys < lk, lq = 1 and lq > 1), q and k/v as column windows of
 * wider tensors. Then the same on 2 and 3 threads, bit for bit equal to one thread.
 */

interface Case {
  b: number;
  lq: number;
  lk: number;
  keys: number;
  H: number;
  G: number;
  dk: number;
  dv: number;
}

const CASES: Case[] = [
  { b: 1, lq: 1, lk: 1, keys: 1, H: 1, G: 1, dk: 4, dv: 4 },
  { b: 2, lq: 7, lk: 7, keys: 7, H: 3, G: 3, dk: 5, dv: 5 },
  { b: 1, lq: 13, lk: 13, keys: 13, H: 4, G: 2, dk: 9, dv: 6 },
  { b: 3, lq: 1, lk: 40, keys: 29, H: 6, G: 2, dk: 8, dv: 8 },
  { b: 2, lq: 5, lk: 64, keys: 37, H: 4, G: 1, dk: 7, dv: 11 },
  { b: 1, lq: 1, lk: 1030, keys: 1021, H: 2, G: 1, dk: 64, dv: 64 },
];

/** One problem on a backend: q, k, v as windows of wider packed tensors (row strides ≠ widths). */
function run(bk: CpuBackend, c: Case, seed: number, scale = 0.37): Float32Array {
  const { b, lq, lk, H, G, dk, dv } = c;
  const qw = H * dk,
    kw = G * dk,
    vw = G * dv;
  const q = bk.upload(rand(b * lq * (qw + 3), seed, 2), [b, lq, qw + 3]).narrow(1, qw);
  const kv = bk.upload(rand(b * lk * (kw + vw + 2), seed + 1, 2), [b, lk, kw + vw + 2]);
  const a: AttentionArgs = {
    out: bk.alloc([b, lq, H * dv]),
    q,
    k: kv.narrow(2, kw),
    v: kv.narrow(2 + kw, vw),
    heads: H,
    kvHeads: G,
    scale,
    keys: c.keys,
  };
  bk.attention!(a);
  return bk.readSync(a.out) as Float32Array;
}

test('attention: WebAssembly matches the TypeScript reference on odd sizes (prefill, decode, GQA, windows)', () => {
  CASES.forEach((c, i) => {
    const want = run(ts, c, 10 * i);
    const got = run(wa, c, 10 * i);
    assert.equal(got.length, want.length);
    let worst = 0;
    for (let j = 0; j < got.length; j++)
      worst = Math.max(worst, Math.abs(got[j] - want[j]) / (1e-3 + Math.abs(want[j])));
    assert.ok(worst < 1e-4, `case ${JSON.stringify(c)}: relative error ${worst}`);
  });
});

test('attention: large scores stay finite (the max is subtracted before exp)', () => {
  const c = CASES[2];
  const want = run(ts, c, 5, 40);
  const got = run(wa, c, 5, 40);
  for (let j = 0; j < got.length; j++) {
    assert.ok(Number.isFinite(got[j]), `element ${j} is ${got[j]}`);
    assert.ok(Math.abs(got[j] - want[j]) < 1e-4 * (1 + Math.abs(want[j])), `element ${j}: ${got[j]} vs ${want[j]}`);
  }
});

test('attention: 2 and 3 threads give exactly the results of one thread', async () => {
  const one = CASES.map((c, i) => run(wa, c, 10 * i));
  for (const threads of [2, 3]) {
    const bk = await wasmOnThreads(threads);
    CASES.forEach((c, i) => assert.deepEqual(run(bk, c, 10 * i), one[i], `${threads} threads, case ${i}`));
  }
});
