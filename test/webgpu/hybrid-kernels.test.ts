import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { assertClose } from '../helpers/compare.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { both, rand } from './pair.js';

/**
 * The hybrids' WebGPU kernels against the CPU reference: grouped-query attention over a KV cache
 * (views, keys < rows, several key tiles, dv up to the kernel's 256) and rotary (full and partial widths,
 * in place and not, inverse).
 */
after(disposeGpu);
const C = cpu();

test('attention on WebGPU: GQA over a partly filled cache, queries at the end, views', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [b, lq, lk, keys, H, G, dk, dv] of [
    [2, 3, 9, 7, 4, 2, 6, 6],
    [1, 1, 150, 130, 2, 1, 8, 8], // several tiles of 64 keys
    [1, 5, 5, 5, 2, 2, 4, 256],
    [2, 70, 70, 70, 3, 3, 5, 7],
  ]) {
    const q = rand(g, [b, lq, H * dk], 1, { pad: 2 });
    const k = rand(g, [b, lk, G * dk], 2, { pad: 1 });
    const v = rand(g, [b, lk, G * dv], 3);
    const out = rand(g, [b, lq, H * dv], 4, { pad: 3 });
    const args = { heads: H, kvHeads: G, scale: 0.3, keys };
    C.attention!({ out: out.c, q: q.c, k: k.c, v: v.c, ...args });
    g.attention!({ out: out.g, q: q.g, k: k.g, v: v.g, ...args });
    const [want, got] = await both(out);
    assertClose(got, want, `attention ${[b, lq, lk, keys, H, G, dk, dv]}`, 1e-5, 1e-6);
  }
});

test('rotary on WebGPU: full and partial widths, in place, inverse', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [inverse, start] of [
    [false, 11],
    [true, 11],
    // angles of thousands of radians: the kernel's f32 angle pos · inv_freq (as transformers and llama.cpp
    // compute it) is off the reference's f64 one by up to pos · 2^-24 radians, 2.4e-4 here
    [false, 4000],
  ] as const) {
    const tol = start > 1000 ? 5e-4 : 1e-5;
    const x = rand(g, [2, 7, 3 * 8], 5, { pad: 2 });
    const out = rand(g, [2, 7, 3 * 8], 6);
    const o = { headDim: 8, start, base: 5000, inverse };
    C.rotary!(out.c, x.c, o);
    g.rotary!(out.g, x.g, o);
    let [want, got] = await both(out);
    assertClose(got, want, `rotary inverse ${inverse}, start ${start}`, tol, tol);
    // in place on a narrow view (a partial rotary's per-head columns)
    const y = rand(g, [2, 7, 3 * 10], 7);
    const part = { c: y.c.narrow(10, 6), g: y.g.narrow(10, 6) };
    C.rotary!(part.c, part.c, { ...o, headDim: 6 });
    g.rotary!(part.g, part.g, { ...o, headDim: 6 });
    [want, got] = await both(y);
    assertClose(got, want, `rotary in place inverse ${inverse}, start ${start}`, tol, tol);
  }
  assert.ok(true);
});

test('moeRoute and moeAccumulate on WebGPU: the three routings, groups, views', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const cases = [
    { E: 4, o: { topK: 2, routing: 'topk-softmax', normTopk: true, scaling: 1, nGroup: 1, topkGroup: 1 } },
    { E: 8, o: { topK: 3, routing: 'softmax-topk', normTopk: false, scaling: 1, nGroup: 1, topkGroup: 1 } },
    { E: 8, o: { topK: 2, routing: 'softmax-topk', normTopk: true, scaling: 1, nGroup: 1, topkGroup: 1 } },
    { E: 16, o: { topK: 4, routing: 'sigmoid', normTopk: true, scaling: 2.5, nGroup: 4, topkGroup: 2 } },
    { E: 128, o: { topK: 6, routing: 'sigmoid', normTopk: true, scaling: 1.7, nGroup: 1, topkGroup: 1 } },
  ] as const;
  for (const { E, o } of cases) {
    const m = 9;
    const logits = rand(g, [m, E], 30 + E, { pad: 1, lo: -3, hi: 3 });
    const bias = rand(g, [E], 40 + E, { lo: -0.5, hi: 0.5 });
    const w = rand(g, [m, E], 50, { pad: 2 });
    C.moeRoute!(w.c, logits.c, bias.c, o);
    g.moeRoute!(w.g, logits.g, bias.g, o);
    const [want, got] = await both(w);
    assertClose(got, want, `moeRoute ${o.routing} E ${E}`, 1e-5, 1e-6);
    const y = rand(g, [m, 5], 60, { pad: 1 });
    const out = rand(g, [m, 5], 61);
    for (const e of [0, E - 1]) {
      C.moeAccumulate!(out.c, y.c, w.c, e);
      g.moeAccumulate!(out.g, y.g, w.g, e);
    }
    const [a, b] = await both(out);
    assertClose(b, a, `moeAccumulate ${o.routing} E ${E}`, 1e-5, 1e-6);
  }
});
