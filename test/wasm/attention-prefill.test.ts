import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import type { AttentionArgs } from '../../src/backend/contract/mixers.js';
import { rowsOf } from '../../src/mixers/rows.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { rand } from '../helpers/random.js';
import { wasmOnThreads } from '../helpers/wasm-backends.js';

/**
 * The prefill attention kernel (attention-prefill.wat: four query rows a unit, lq >= 4) computes each
 * row with the arithmetic of the one-row kernel (attention.wat), so every query row of a prefill must
 * equal, bit for bit, the same row asked alone (lq = 1, the keys up to its position): on odd head
 * widths (the 8-, 4- and 1-column paths), GQA, a last block of fewer than four rows, a cache holding
 * keys before the queries, and on 1, 2 and 3 threads. (test/wasm/attention.test.ts checks both against the
 * TypeScript reference.)
 */

interface Case {
  b: number;
  lq: number;
  keys: number;
  H: number;
  G: number;
  dk: number;
  dv: number;
}

const CASES: Case[] = [
  { b: 1, lq: 4, keys: 4, H: 1, G: 1, dk: 4, dv: 4 },
  { b: 2, lq: 5, keys: 5, H: 2, G: 1, dk: 3, dv: 3 },
  { b: 1, lq: 9, keys: 20, H: 4, G: 2, dk: 13, dv: 13 },
  { b: 1, lq: 33, keys: 33, H: 3, G: 3, dk: 16, dv: 12 },
  { b: 2, lq: 70, keys: 75, H: 4, G: 2, dk: 64, dv: 64 },
];

/** q (b, lq, H dk), k and v (b, keys + 3, G d) as windows of wider tensors, made from seeds on `bk`. */
function inputs(bk: CpuBackend, c: Case, seed: number): { q: Tensor; k: Tensor; v: Tensor } {
  const { b, lq, keys, H, G, dk, dv } = c;
  const lk = keys + 3;
  const q = bk.upload(rand(b * lq * (H * dk + 2), seed, 2), [b, lq, H * dk + 2]).narrow(1, H * dk);
  const kv = bk.upload(rand(b * lk * (G * (dk + dv) + 1), seed + 1, 2), [b, lk, G * (dk + dv) + 1]);
  return { q, k: kv.narrow(0, G * dk), v: kv.narrow(G * dk, G * dv) };
}

function prefill(bk: CpuBackend, c: Case, seed: number): Float32Array {
  const { q, k, v } = inputs(bk, c, seed);
  const a: AttentionArgs = {
    out: bk.alloc([c.b, c.lq, c.H * c.dv]),
    q,
    k,
    v,
    heads: c.H,
    kvHeads: c.G,
    scale: 0.3,
    keys: c.keys,
  };
  bk.attention!(a);
  return bk.readSync(a.out) as Float32Array;
}

/** Each query row alone: lq = 1, keys = its position + 1. */
function rowByRow(bk: CpuBackend, c: Case, seed: number): Float32Array {
  const { q, k, v } = inputs(bk, c, seed);
  const w = c.H * c.dv;
  const got = new Float32Array(c.b * c.lq * w);
  for (let bi = 0; bi < c.b; bi++)
    for (let i = 0; i < c.lq; i++) {
      const out = bk.alloc([1, 1, w]);
      const pos = c.keys - c.lq + i; // (1, rows, width) views of sequence bi
      bk.attention!({
        out,
        q: rowsOf(q, bi, i, 1),
        k: rowsOf(k, bi, 0, pos + 1),
        v: rowsOf(v, bi, 0, pos + 1),
        heads: c.H,
        kvHeads: c.G,
        scale: 0.3,
        keys: pos + 1,
      });
      got.set(bk.readSync(out) as Float32Array, (bi * c.lq + i) * w);
    }
  return got;
}

test('prefill attention: every query row equals that row asked alone, bit for bit (1, 2, 3 threads)', async () => {
  for (const threads of [1, 2, 3]) {
    const bk = await wasmOnThreads(threads);
    CASES.forEach((c, n) => {
      const want = rowByRow(bk, c, 7 * n);
      const got = prefill(bk, c, 7 * n);
      assert.deepEqual(got, want, `${JSON.stringify(c)}, ${threads} threads`);
    });
  }
});
