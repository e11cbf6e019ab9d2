import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/webgpu-backend.js';
import { isMambaError } from '../../src/errors.js';
import { MambaMixer, type MambaDims, type MambaMixerWeights } from '../../src/mixers/mamba.js';
import type { MixerState } from '../../src/mixers/mixer.js';
import type { LanguageModel } from '../../src/models/lm.js';
import type { DType } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertClose } from '../helpers/compare.js';
import { fixtureModel } from '../helpers/fixture-model.js';
import { disposeGpu, requireAdapter, unfused } from '../helpers/webgpu.js';
import { rand, type Pair } from './pair.js';

after(disposeGpu);

const EPS = 1e-5;

/** A Mamba mixer with random weights on the CPU and on the GPU (the same values). */
function mixers(
  g: Backend,
  dims: MambaDims,
  wdt: DType,
  biases: boolean,
  seed: number,
): { c: MambaMixer; g: MambaMixer } {
  const { d, e, n, k, r } = dims;
  const m = (shape: number[], s: number, lo = -1, hi = 1, dtype: DType = 'f32'): Pair =>
    rand(g, shape, seed + s, { dtype, lo, hi });
  const s = 1 / Math.sqrt(d),
    se = 1 / Math.sqrt(e);
  const p = {
    inProj: m([2 * e, d], 1, -s, s, wdt),
    inProjBias: biases ? m([2 * e], 2, -0.1, 0.1) : null,
    convWeight: m([e, k], 3, -0.5, 0.5),
    convBias: m([e], 4, -0.1, 0.1),
    xProj: m([r + 2 * n, e], 5, -se, se, wdt),
    dtProj: m([e, r], 6, -0.5, 0.5, wdt),
    dtProjBias: m([e], 7, -4, -1),
    ALog: m([e, n], 8, 0, 1.5),
    D: m([e], 9, 0.5, 1.5),
    outProj: m([d, e], 10, -se, se, wdt),
    outProjBias: biases ? m([d], 11, -0.1, 0.1) : null,
  };
  const side = (which: 'c' | 'g'): MambaMixerWeights => {
    const w = {} as Record<string, Tensor | null>;
    for (const [key, v] of Object.entries(p)) w[key] = v ? v[which] : null;
    return w as unknown as MambaMixerWeights;
  };
  return { c: new MambaMixer(cpu(), side('c'), dims), g: new MambaMixer(g, side('g'), dims) };
}

/** The unfused block: residual <- residual + mixer.step(rmsnorm(residual) · norm), in separate kernels. */
function composedBlock(mixer: MambaMixer, residual: Tensor, norm: Tensor, state: MixerState): void {
  const bk = mixer.backend;
  const normed = bk.alloc(residual.shape);
  const hidden = bk.alloc(residual.shape);
  bk.addRmsnorm(normed, residual, null, norm, EPS);
  mixer.step(normed, hidden, state);
  bk.binary('add', residual, residual, hidden);
  normed.dispose();
  hidden.dispose();
}

async function assertStatesClose(a: MixerState, b: MixerState, what: string): Promise<void> {
  for (const key of ['conv', 'ssm']) {
    assertClose(await a[key].readFloat(), await b[key].readFloat(), `${what}: ${key} state`, 1e-4, 1e-5);
  }
}

// d = 37: scalar path (no 16-byte words); d = 64: the 16-byte path (f32: 4, 16-bit: 8 per word);
// a residual view with an odd offset falls back to the scalar path; batch 5 spans two 4-row blocks.
const CASES: { d: number; b: number; wdt: DType; ndt: DType; biases: boolean; pad: number }[] = [
  { d: 37, b: 1, wdt: 'f32', ndt: 'f32', biases: false, pad: 0 },
  { d: 37, b: 3, wdt: 'bf16', ndt: 'bf16', biases: true, pad: 0 },
  { d: 37, b: 3, wdt: 'f32', ndt: 'bf16', biases: false, pad: 1 },
  { d: 64, b: 1, wdt: 'f32', ndt: 'f32', biases: false, pad: 0 },
  { d: 64, b: 1, wdt: 'bf16', ndt: 'bf16', biases: false, pad: 0 },
  { d: 64, b: 3, wdt: 'f32', ndt: 'f16', biases: true, pad: 0 },
  { d: 64, b: 3, wdt: 'bf16', ndt: 'f32', biases: true, pad: 1 },
  { d: 64, b: 5, wdt: 'f16', ndt: 'bf16', biases: false, pad: 0 },
];

test('mambaStep with preNorm (norm in in_proj, residual add in out_proj) equals the composition, on the CPU and on WebGPU', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [ci, c] of CASES.entries()) {
    const dims: MambaDims = { d: c.d, e: 2 * c.d + 2, n: 6, k: 4, r: Math.ceil(c.d / 16) };
    const what = `d=${c.d} b=${c.b} weights ${c.wdt} norm ${c.ndt}${c.biases ? ' biases' : ''}${c.pad ? ' residual view' : ''}`;
    const mx = mixers(g, dims, c.wdt, c.biases, 100 * ci);
    const norm = rand(g, [c.d], 100 * ci + 50, { dtype: c.ndt, lo: 0.5, hi: 1.5 });
    const wide = rand(g, [c.b, c.d + 2 * c.pad], 100 * ci + 51, { lo: -2, hi: 2 });
    const res = { c: wide.c.narrow(c.pad, c.d), g: wide.g.narrow(c.pad, c.d) };
    // the same starting residual for the unfused run on WebGPU
    const res2 = g.alloc([c.b, c.d]);
    g.copy(res2, res.g);
    const sc = mx.c.initState(c.b),
      sg = mx.g.initState(c.b),
      sg2 = mx.g.initState(c.b);
    // the CPU has no fused step: blockStep declines and the model runs the composition there
    assert.equal(mx.c.blockStep(res.c, norm.c, EPS, sc), false, 'CPU blockStep declines');
    for (let step = 0; step < 3; step++) {
      composedBlock(mx.c, res.c, norm.c, sc);
      assert.equal(mx.g.blockStep(res.g, norm.g, EPS, sg), true, `${what}: WebGPU fuses the block`);
      await unfused(g, async () => {
        assert.equal(mx.g.blockStep(res2, norm.g, EPS, sg2), false, `${what}: fuseNorm off declines`);
        composedBlock(mx.g, res2, norm.g, sg2);
      });
      const ref = await res.c.readFloat();
      assertClose(await res.g.readFloat(), ref, `${what}, step ${step}: fused residual vs CPU composition`, 1e-4, 1e-5);
      assertClose(
        await res.g.readFloat(),
        await res2.readFloat(),
        `${what}, step ${step}: fused vs unfused on WebGPU`,
        1e-4,
        1e-5,
      );
      await assertStatesClose(sg, sc, `${what}, step ${step}: fused vs CPU`);
      await assertStatesClose(sg, sg2, `${what}, step ${step}: fused vs unfused on WebGPU`);
    }
    // with a view, the columns around it are left as they were
    assertClose(await wide.g.readFloat(), await wide.c.readFloat(), `${what}: the whole residual buffer`, 1e-4, 1e-5);
    for (const s of [sc, sg, sg2]) for (const v of Object.values(s)) v.dispose();
    res2.dispose();
  }
});

test('mambaStep preNorm: the norm weight is checked (shape, dtype, backend)', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const dims: MambaDims = { d: 16, e: 32, n: 4, k: 4, r: 1 };
  const mx = mixers(g, dims, 'f32', false, 7);
  const res = g.zeros([2, 16]);
  const st = mx.g.initState(2);
  const expectCode = (code: string, fn: () => void): void => {
    assert.throws(fn, (e: unknown) => isMambaError(e) && e.code === code && /norm weight/.test(e.message));
  };
  expectCode('SHAPE_MISMATCH', () => mx.g.blockStep(res, g.zeros([15]), EPS, st));
  expectCode('DTYPE_MISMATCH', () => mx.g.blockStep(res, g.zeros([16], 'i32'), EPS, st));
  assert.throws(
    () => mx.g.blockStep(res, cpu().zeros([16]), EPS, st),
    (e: unknown) => isMambaError(e, 'BACKEND_MISMATCH'),
  );
});

/** Dispatches of one model step of batch `b` (after a first step has made the buffers). */
async function stepDispatches(
  g: WebGpuBackend,
  model: LanguageModel,
  b: number,
): Promise<{ dispatches: number; logits: Float32Array }> {
  const state = model.initState(b);
  const ids = Array.from({ length: b }, (_, i) => 3 + i);
  model.stepIds(ids, state);
  const before = g.d.stats.dispatches;
  model.step(g.upload(Int32Array.from(ids), [b], 'i32'), state);
  const dispatches = g.d.stats.dispatches - before;
  const logits = await model.stepIds(ids, state).readFloat();
  state.dispose();
  return { dispatches, logits };
}

test('model step on WebGPU: 4 dispatches per Mamba layer with the fused norm (5 without), the same logits', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const model = await fixtureModel('mamba1-tied', g, 'f32');
  const L = model.blocks.length;
  for (const b of [1, 3]) {
    const fused = await stepDispatches(g, model, b);
    const plain: { dispatches: number; logits: Float32Array } = await unfused(g, () => stepDispatches(g, model, b));
    // embedding + layers + final norm + lm_head (fused: the final norm taken into lm_head, Backend.fusedLinear)
    assert.equal(fused.dispatches, 1 + 4 * L + 1, `batch ${b}: fused dispatches`);
    assert.equal(plain.dispatches, 1 + 5 * L + 2, `batch ${b}: unfused dispatches`);
    assertClose(fused.logits, plain.logits, `batch ${b}: fused vs unfused logits`, 0, 2e-5);
  }
});
