import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AttentionArgs } from '../../src/backend/contract/mixers.js';
import type { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { rand } from '../helpers/random.js';
import { ts, wa, wasmOnThreads } from '../helpers/wasm-backends.js';

/**
 * Attention with a key count per sequence (rowKeys: a decode batch of sequences at different context
 * lengths), on the TypeScript reference and in WebAssembly (attention_rows_lens), against each sequence
 * run alone with its own `keys`: bit for bit on each kernel (the same order of operations per row), the
 * two kernels within 1e-4 of each other, on 1 to 3 threads alike. The cache rows past a sequence's count
 * hold NaN: a row that read past its own length would show it.
 */

interface Case {
  lq: number;
  lk: number;
  rowKeys: number[];
  H: number;
  G: number;
  dk: number;
  dv: number;
}

const CASES: Case[] = [
  { lq: 1, lk: 16, rowKeys: [1, 16, 7], H: 4, G: 2, dk: 8, dv: 8 },
  { lq: 1, lk: 40, rowKeys: [29, 3, 40, 1, 12], H: 6, G: 2, dk: 5, dv: 7 },
  { lq: 2, lk: 33, rowKeys: [2, 33, 17], H: 2, G: 1, dk: 9, dv: 6 },
  { lq: 1, lk: 300, rowKeys: [300, 5, 260, 64], H: 4, G: 4, dk: 32, dv: 32 },
];

/** q, k, v of a case: q a column window of a wider tensor; k, v with NaN past each sequence's count. */
function inputs(bk: CpuBackend, c: Case, seed: number) {
  const { lq, lk, H, G, dk, dv, rowKeys } = c;
  const b = rowKeys.length;
  const qw = H * dk,
    kw = G * dk,
    vw = G * dv;
  const q = bk.upload(rand(b * lq * (qw + 3), seed, 2), [b, lq, qw + 3]).narrow(1, qw);
  const data = rand(b * lk * (kw + vw), seed + 1, 2);
  rowKeys.forEach((n, bi) => data.fill(NaN, (bi * lk + n) * (kw + vw), (bi + 1) * lk * (kw + vw)));
  const kv = bk.upload(data, [b, lk, kw + vw]);
  return { q, k: kv.narrow(0, kw), v: kv.narrow(kw, vw) };
}

function batched(bk: CpuBackend, c: Case, seed: number): Float32Array {
  const { q, k, v } = inputs(bk, c, seed);
  const b = c.rowKeys.length;
  const a: AttentionArgs = {
    out: bk.alloc([b, c.lq, c.H * c.dv]),
    q,
    k,
    v,
    heads: c.H,
    kvHeads: c.G,
    scale: 0.37,
    rowKeys: bk.upload(Float32Array.from(c.rowKeys), [b]),
  };
  bk.attention!(a);
  return bk.readSync(a.out) as Float32Array;
}

/** Each sequence alone (batch 1 views of the same inputs) with keys = its count. */
function alone(bk: CpuBackend, c: Case, seed: number): Float32Array {
  const { q, k, v } = inputs(bk, c, seed);
  const b = c.rowKeys.length;
  const per = c.lq * c.H * c.dv;
  const out = new Float32Array(b * per);
  for (let bi = 0; bi < b; bi++) {
    // sequence bi of a (b, l, w) view: a (1, l, w) view
    const pick = (t: Tensor, l: number) =>
      new Tensor(t.backend, t.storage, [1, l, t.dim(2)], t.dtype, t.offset + bi * l * t.ld, t.ld, t.base ?? t);
    const o = bk.alloc([1, c.lq, c.H * c.dv]);
    bk.attention!({
      out: o,
      q: pick(q, c.lq),
      k: pick(k, c.lk),
      v: pick(v, c.lk),
      heads: c.H,
      kvHeads: c.G,
      scale: 0.37,
      keys: c.rowKeys[bi],
    });
    out.set(bk.readSync(o) as Float32Array, bi * per);
  }
  return out;
}

test('attention with rowKeys: each kernel equals each sequence alone bit for bit, and reads no key past its count', () => {
  CASES.forEach((c, i) => {
    for (const bk of [ts, wa]) {
      const got = batched(bk, c, 10 * i);
      for (let j = 0; j < got.length; j++) assert.ok(Number.isFinite(got[j]), `case ${i}: element ${j} is ${got[j]}`);
      assert.deepEqual(got, alone(bk, c, 10 * i), `case ${i} on ${bk.kernels}`);
    }
    const want = batched(ts, c, 10 * i),
      got = batched(wa, c, 10 * i);
    let worst = 0;
    for (let j = 0; j < got.length; j++)
      worst = Math.max(worst, Math.abs(got[j] - want[j]) / (1e-3 + Math.abs(want[j])));
    assert.ok(worst < 1e-4, `case ${i}: WebAssembly vs reference, relative error ${worst}`);
  });
});

test('attention with rowKeys: 2 and 3 threads give exactly the results of one thread', async () => {
  const one = CASES.map((c, i) => batched(wa, c, 10 * i));
  for (const threads of [2, 3]) {
    const bk = await wasmOnThreads(threads);
    CASES.forEach((c, i) => assert.deepEqual(batched(bk, c, 10 * i), one[i], `${threads} threads, case ${i}`));
  }
});

test('attention with rowKeys: a count outside [lq, keys] or of the wrong shape is refused', () => {
  const c = CASES[0];
  const { q, k, v } = inputs(wa, c, 1);
  const args = (rowKeys: number[], keys?: number): AttentionArgs => ({
    out: wa.alloc([rowKeys.length, 1, c.H * c.dv]),
    q,
    k,
    v,
    heads: c.H,
    kvHeads: c.G,
    scale: 1,
    ...(keys === undefined ? {} : { keys }),
    rowKeys: wa.upload(Float32Array.from(rowKeys), [rowKeys.length]),
  });
  const bad = (e: Error & { code?: string }) => e.code === 'BAD_ARGUMENT';
  assert.throws(() => wa.attention!(args([1, 17, 3])), bad); // past the cache's 16 rows
  assert.throws(() => wa.attention!(args([1, 0, 3])), bad); // no key for the query
  assert.throws(() => wa.attention!(args([1, 9, 3], 8)), bad); // past `keys`
  assert.throws(() => wa.attention!(args([1, 2.5, 3])), bad);
  assert.throws(() => wa.attention!({ ...args([1, 2, 3]), rowKeys: wa.upload(Float32Array.of(1, 2), [2]) }), {
    code: 'SHAPE_MISMATCH',
  });
});
