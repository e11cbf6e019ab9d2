import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { splitSpans } from '../../src/backend/webgpu/kernels/attention.js';
import { assertClose, randomArray } from '../helpers/compare.js';
import { disposeGpu, pipeKeys, requireAdapter } from '../helpers/webgpu.js';
import { both, rand, upload } from './pair.js';

/**
 * The split-K (flash-decoding) path of WebGPU attention (attention-split.wgsl: key spans per workgroup,
 * partials merged by a combine kernel), taken where the (sequence, query, head) rows are few and the keys
 * many, against the CPU reference: odd sizes, spans of one and of several tiles of 64 keys, a last span
 * shorter than the others, spans past a short row's keys (a key count per sequence), dv up to 256.
 */
after(disposeGpu);
const C = cpu();

test('splitSpans: split only for few rows over more than one tile of keys; the spans cover the keys', () => {
  assert.equal(splitSpans(8, 64), undefined); // one tile
  assert.equal(splitSpans(512, 4096), undefined); // enough rows already
  for (const [rows, keys] of [
    [8, 65],
    [8, 512],
    [2, 1000],
    [37, 4097],
    [1, 100000],
  ]) {
    const s = splitSpans(rows, keys);
    assert.ok(s, `rows ${rows}, keys ${keys}`);
    assert.equal(s.chunk % 64, 0);
    assert.ok(s.S >= 2 && (s.S - 1) * s.chunk < keys && s.S * s.chunk >= keys, `${JSON.stringify(s)} for ${keys}`);
  }
});

test('split-K attention on WebGPU equals the CPU reference (one count for all)', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const { keys: keys4, restore } = pipeKeys(g);
  try {
    for (const [b, lq, lk, keys, H, G, dk, dv, aligned] of [
      [1, 1, 131, 129, 3, 1, 7, 5, 0], // three spans of one tile, the last of one key
      [1, 1, 1030, 1001, 13, 1, 9, 11, 0], // spans of several tiles
      [2, 3, 300, 299, 2, 2, 6, 256, 0], // several queries, widest value heads
      [3, 1, 77, 77, 5, 5, 3, 3, 0],
      // q and k rows on 16-byte boundaries: the dot products in vec4s, four ahead (dk 64) and the rest (dk 20)
      [1, 1, 600, 600, 8, 2, 64, 64, 1],
      [2, 1, 300, 257, 4, 2, 20, 12, 1],
    ]) {
      const n = b * lq * H;
      assert.ok(splitSpans(n, keys), `case ${[b, lq, lk, keys, H]} takes the split path`);
      const q = rand(g, [b, lq, H * dk], 11, { pad: aligned ? 0 : 1 });
      const k = rand(g, [b, lk, G * dk], 12, { pad: aligned ? 0 : 2 });
      const v = rand(g, [b, lk, G * dv], 13, { pad: 1 });
      const out = rand(g, [b, lq, H * dv], 14, { pad: 2 });
      const args = { heads: H, kvHeads: G, scale: 0.37, keys };
      C.attention!({ out: out.c, q: q.c, k: k.c, v: v.c, ...args });
      g.attention!({ out: out.g, q: q.g, k: k.g, v: v.g, ...args });
      const [want, got] = await both(out);
      assertClose(got, want, `split attention ${[b, lq, lk, keys, H, G, dk, dv]}`, 1e-5, 1e-6);
      assert.ok(
        keys4.includes(`attention-split:${!!aligned}`),
        `case ${[b, lq, lk, keys, H, G, dk]}: KV4 ${!!aligned}`,
      );
      keys4.length = 0;
    }
  } finally {
    restore();
  }
});

test('split-K attention on WebGPU with a key count per sequence reads no key past it', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [lq, lk, H, G, dk, dv, rowKeys] of [
    [1, 700, 3, 1, 5, 7, [1, 700, 333, 64, 65]], // a row of one key: all its spans but the first empty
    [2, 260, 2, 2, 4, 9, [2, 259, 130]],
  ] as [number, number, number, number, number, number, number[]][]) {
    const b = rowKeys.length;
    assert.ok(splitSpans(b * lq * H, lk), 'takes the split path');
    const q = rand(g, [b, lq, H * dk], 21, { pad: 2 });
    const kd = randomArray(b * lk * G * dk, 22, -1, 1),
      vd = randomArray(b * lk * G * dv, 23, -1, 1);
    rowKeys.forEach((n, bi) => {
      kd.fill(NaN, (bi * lk + n) * G * dk, (bi + 1) * lk * G * dk);
      vd.fill(NaN, (bi * lk + n) * G * dv, (bi + 1) * lk * G * dv);
    });
    const k = upload(g, kd, [b, lk, G * dk]),
      v = upload(g, vd, [b, lk, G * dv]);
    const out = rand(g, [b, lq, H * dv], 24, { pad: 1 });
    const lens = upload(g, Float32Array.from([5, ...rowKeys]), [b + 1]);
    const rk = {
      c: lens.c
        .reshape([1, b + 1])
        .narrow(1, b)
        .reshape([b]),
      g: lens.g
        .reshape([1, b + 1])
        .narrow(1, b)
        .reshape([b]),
    };
    const args = { heads: H, kvHeads: G, scale: 0.3 };
    C.attention!({ out: out.c, q: q.c, k: k.c, v: v.c, rowKeys: rk.c, ...args });
    g.attention!({ out: out.g, q: q.g, k: k.g, v: v.g, rowKeys: rk.g, ...args });
    const [want, got] = await both(out);
    for (let j = 0; j < got.length; j++) assert.ok(Number.isFinite(got[j]), `element ${j} is ${got[j]}`);
    assertClose(got, want, `split attention rowKeys ${[lq, lk, H, G, dk, dv]} ${rowKeys}`, 1e-5, 1e-6);
  }
});
