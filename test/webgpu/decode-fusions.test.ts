import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { UnaryOp } from '../../src/backend/contract/inference.js';
import { CpuBackend, cpu } from '../../src/backend/cpu/cpu-backend.js';
import { isMambaError } from '../../src/errors.js';
import { assertClose } from '../helpers/compare.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { both, rand, upload } from './pair.js';

/**
 * The decode step's fusions (issue 14) against their unfused form: addRmsnorm's xScale (a branch's
 * output multiplier taken into the residual add) against mul by a constant row then addRmsnorm, and
 * unaryMul (f(x) ⊙ y in one pass) against unary then binary mul, on the GPU and on the CPU reference
 * (the TypeScript kernels); odd widths, views with offsets and strides.
 */
after(disposeGpu);
const ref = new CpuBackend({ kernels: 'ts' });
const C = cpu(); // the pairs' CPU side (test/webgpu/pair.ts)

test('addRmsnorm with xScale: the unfused mul + add, on odd widths and views', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [m, d] of [
    [1, 7],
    [3, 301],
    [2, 1000],
  ] as const) {
    for (const xScale of [1, 0.22, -1.75]) {
      const res = rand(g, [m, d], 60 + d, { pad: 1 });
      const res2 = rand(g, [m, d], 60 + d, { pad: 1 }); // the same values, for the unfused path
      const x = rand(g, [m, d], 61 + d, { pad: 3 });
      const w = rand(g, [d], 62 + d);
      const out = rand(g, [m, d], 63 + d);
      const out2 = rand(g, [m, d], 63 + d);
      g.addRmsnorm(out.g, res.g, x.g, w.g, 1e-5, xScale);
      // unfused, on the GPU: t = x · xScale, then the plain add
      const s = upload(g, new Float32Array(d).fill(xScale), [d]);
      const tx = g.alloc([m, d]);
      g.binary('mul', tx, x.g, s.g);
      g.addRmsnorm(out2.g, res2.g, tx, w.g, 1e-5);
      const what = `m=${m} d=${d} xScale=${xScale}`;
      // xScale 1 adds x exactly; else a GPU may contract x · xScale + r into one fma (one rounding fewer)
      const [rt, at] = xScale === 1 ? [0, 0] : [1e-6, 1e-7];
      assertClose(await res.g.read(), await res2.g.read(), `${what}: residual, fused vs unfused GPU`, rt, at);
      assertClose(await out.g.read(), await out2.g.read(), `${what}: out, fused vs unfused GPU`, 10 * rt, 10 * at);
      // the CPU reference (TypeScript), fused, on the same inputs
      const rc = ref.upload((await res2.c.read()) as Float32Array, [m, d]);
      const oc = ref.alloc([m, d]);
      const wc = ref.upload((await w.c.read()) as Float32Array, [d]);
      ref.addRmsnorm(oc, rc, ref.upload((await x.c.read()) as Float32Array, [m, d]), wc, 1e-5, xScale);
      assertClose(await res.g.read(), await ref.read(rc), `${what}: residual vs CPU reference`, 1e-6, 1e-7);
      assertClose(await out.g.read(), await ref.read(oc), `${what}: out vs CPU reference`, 1e-5, 1e-6);
      tx.dispose();
    }
  }
});

test('addRmsnorm with xScale on the CPU: the TypeScript reference and the WebAssembly kernel agree', () => {
  const wa = new CpuBackend({ kernels: 'wasm' });
  for (const [m, d] of [
    [1, 5],
    [3, 13],
    [2, 769],
  ] as const) {
    const r = Float32Array.from({ length: m * d }, (_, i) => Math.sin(i * 0.7) * 2);
    const xv = Float32Array.from({ length: m * d }, (_, i) => Math.cos(i * 1.3));
    const wv = Float32Array.from({ length: d }, (_, i) => 1 + 0.1 * Math.sin(i));
    const outs = [ref, wa].map((bk) => {
      const res = bk.upload(r, [m, d]);
      const out = bk.alloc([m, d]);
      bk.addRmsnorm(out, res, bk.upload(xv, [m, d]), bk.upload(wv, [d]), 1e-5, 0.22);
      return [bk.readSync(res), bk.readSync(out)];
    });
    // unfused reference: x · f32(0.22) rounded to f32, then the plain add
    const scaled = xv.map((v) => Math.fround(v * Math.fround(0.22)));
    const res = ref.upload(r, [m, d]);
    const out = ref.alloc([m, d]);
    ref.addRmsnorm(out, res, ref.upload(scaled, [m, d]), ref.upload(wv, [d]), 1e-5);
    assertClose(outs[0][0], ref.readSync(res), `m=${m} d=${d}: TypeScript residual vs unfused`, 0, 0);
    assertClose(outs[0][1], ref.readSync(out), `m=${m} d=${d}: TypeScript out vs unfused`, 0, 0);
    assertClose(outs[1][0], outs[0][0], `m=${m} d=${d}: wasm residual`, 0, 0);
    assertClose(outs[1][1], outs[0][1], `m=${m} d=${d}: wasm out`, 1e-5, 1e-6);
  }
});

test('unaryMul: f(x) ⊙ y is unary then binary mul, odd sizes, views', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  assert.ok(g.unaryMul, 'the WebGPU backend has unaryMul');
  let seed = 70;
  for (const [m, n] of [
    [1, 1],
    [1, 37],
    [3, 259],
    [5, 1031],
  ] as const) {
    for (const op of ['silu', 'gelu', 'relu', 'sigmoid'] as UnaryOp[]) {
      const x = rand(g, [m, n], seed++, { pad: 2, lo: -6, hi: 6 });
      const y = rand(g, [m, n], seed++, { pad: 5 });
      const out = rand(g, [m, n], seed++, { pad: 1 });
      g.unaryMul!(op, out.g, x.g, y.g);
      // unfused, on the GPU
      const tmp = g.alloc([m, n]);
      const out2 = g.alloc([m, n]);
      g.unary(op, tmp, x.g);
      g.binary('mul', out2, tmp, y.g);
      const what = `${op} m=${m} n=${n}`;
      // the same f32 operations; a GPU compiler may still contract them differently (a few ulp at most)
      assertClose(await out.g.read(), await out2.read(), `${what}: fused vs unfused GPU`, 1e-6, 1e-7);
      // the CPU reference
      C.unary(op, out.c, x.c);
      C.binary('mul', out.c, out.c, y.c);
      const [a, b] = await both(out);
      assertClose(a, b, `${what}: vs CPU reference`, 1e-5, 1e-6);
      // the columns around the view are untouched
      assertClose(await out.g.base!.read(), await out.c.base!.read(), `${what}: around the view`, 1e-5, 1e-6);
      tmp.dispose();
      out2.dispose();
    }
  }
});

test('unaryMul refuses an out that shares storage with an input, and mismatched shapes', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const x = g.alloc([2, 8]);
  const y = g.alloc([2, 8]);
  assert.throws(
    () => g.unaryMul!('silu', x.narrow(0, 4), x.narrow(4, 4), y.narrow(0, 4)),
    (e) => isMambaError(e) && e.code === 'BAD_ARGUMENT' && /shares its storage/.test(e.message),
  );
  assert.throws(
    () => g.unaryMul!('silu', g.alloc([2, 8]), x, g.alloc([8])),
    (e) => isMambaError(e) && e.code === 'SHAPE_MISMATCH',
  );
});
