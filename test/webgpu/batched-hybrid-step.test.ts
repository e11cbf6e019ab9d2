import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { join } from 'node:path';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { loadHybridModel } from '../../src/models/node/load-checkpoint.js';
import { batchedVsAlone } from '../helpers/batched-rows.js';
import { assertClose, randomArray } from '../helpers/compare.js';
import { FAMILY } from '../helpers/fixtures.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { both, rand, upload } from './pair.js';

/**
 * The batched decode step of hybrids with rows at different context lengths on WebGPU (SwiftShader in
 * CI): the attention kernel's `rows` entry (a key count per sequence, read from a view of a longer
 * buffer) against the CPU reference, never reading past a row's count (NaN there would show), and the
 * model's batched step against each row stepped alone on WebGPU, for Granite (NoPE; RoPE with GQA) and
 * Falcon-H1.
 */
after(disposeGpu);
const C = cpu();

test('attention on WebGPU with a key count per sequence equals the CPU reference, reads no key past it', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [lq, lk, H, G, dk, dv, rowKeys] of [
    [1, 16, 4, 2, 8, 8, [1, 16, 7]],
    [1, 150, 2, 1, 8, 8, [130, 3, 150, 64, 65]], // several tiles of 64 keys
    [2, 40, 3, 3, 5, 7, [2, 40, 21]],
  ] as [number, number, number, number, number, number, number[]][]) {
    const b = rowKeys.length;
    const q = rand(g, [b, lq, H * dk], 1, { pad: 2 });
    const kd = randomArray(b * lk * G * dk, 2, -1, 1),
      vd = randomArray(b * lk * G * dv, 3, -1, 1);
    rowKeys.forEach((n, bi) => {
      kd.fill(NaN, (bi * lk + n) * G * dk, (bi + 1) * lk * G * dk);
      vd.fill(NaN, (bi * lk + n) * G * dv, (bi + 1) * lk * G * dv);
    });
    const k = upload(g, kd, [b, lk, G * dk]),
      v = upload(g, vd, [b, lk, G * dv]);
    const out = rand(g, [b, lq, H * dv], 4, { pad: 3 });
    // the counts as a (b) view at an offset of a longer buffer (the engine's batch: the first b of its rows)
    const lens = upload(g, Float32Array.from([0, ...rowKeys, 9]), [b + 2]);
    const rk = {
      c: lens.c
        .reshape([1, b + 2])
        .narrow(1, b)
        .reshape([b]),
      g: lens.g
        .reshape([1, b + 2])
        .narrow(1, b)
        .reshape([b]),
    };
    const args = { heads: H, kvHeads: G, scale: 0.3 };
    C.attention!({ out: out.c, q: q.c, k: k.c, v: v.c, rowKeys: rk.c, ...args });
    g.attention!({ out: out.g, q: q.g, k: k.g, v: v.g, rowKeys: rk.g, ...args });
    const [got, want] = await both(out);
    for (let j = 0; j < got.length; j++) assert.ok(Number.isFinite(got[j]), `element ${j} is ${got[j]}`);
    assertClose(got, want, `attention rowKeys ${[lq, lk, H, G, dk, dv]} ${rowKeys}`, 1e-5, 1e-6);
  }
});

test('rotary on WebGPU with a start per sequence equals the CPU reference (in place and not, partial views)', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [b, l, H, dh, inverse] of [
    [3, 1, 4, 8, false],
    [4, 2, 2, 6, true],
  ] as [number, number, number, number, boolean][]) {
    const values = [5, 0, 17, 3, 1000].slice(0, b + 1);
    // the kernel's f32 angle is off the reference's f64 one by up to pos · 2^-24 radians (hybrid-kernels' test)
    const tol = Math.max(...values) > 100 ? 5e-4 : 1e-5;
    const starts = upload(g, Float32Array.from(values), [b + 1]);
    const rs = {
      c: starts.c
        .reshape([1, b + 1])
        .narrow(1, b)
        .reshape([b]),
      g: starts.g
        .reshape([1, b + 1])
        .narrow(1, b)
        .reshape([b]),
    };
    const x = rand(g, [b, l, H * dh], 7, { pad: 1 });
    const out = rand(g, [b, l, H * dh], 8);
    const o = { headDim: dh, start: 0, base: 10000, inverse };
    C.rotary!(out.c, x.c, { ...o, rowStarts: rs.c });
    g.rotary!(out.g, x.g, { ...o, rowStarts: rs.g });
    const [got, want] = await both(out);
    assertClose(got, want, `rotary rowStarts ${[b, l, H, dh, inverse]}`, tol, tol);
    const y = upload(g, Float32Array.from(want), [b, l, H * dh]);
    C.rotary!(y.c, y.c, { ...o, rowStarts: rs.c });
    g.rotary!(y.g, y.g, { ...o, rowStarts: rs.g });
    const [gy, wy] = await both(y);
    assertClose(gy, wy, `rotary rowStarts in place ${[b, l, H, dh, inverse]}`, tol, tol);
  }
});

const PROMPTS = [
  [5, 9, 2],
  [7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4],
  [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9], // 15: a cache of 16, grown in the batch
];

for (const name of ['granite-hybrid-nope', 'granite-hybrid-rope-dense', 'falcon-h1']) {
  test(`${name} on WebGPU: a batched step of rows at different lengths equals each row stepped alone`, async (t) => {
    const gpu = await requireAdapter(t);
    if (!gpu) return;
    const model = await loadHybridModel(join(FAMILY, name), { backend: gpu });
    const { worst, leftWorst, positions } = await batchedVsAlone(model, PROMPTS, 6);
    t.diagnostic(`batch vs alone ${worst.toExponential(2)}, row taken out ${leftWorst.toExponential(2)}`);
    assert.ok(worst < 1e-5, `batched step vs each row alone: max abs logits difference ${worst}`);
    assert.equal(leftWorst, 0, 'a row taken out of the batch continues exactly like its own state');
    assert.deepEqual(
      positions,
      PROMPTS.map((p) => p.length + 6),
    );
  });
}
