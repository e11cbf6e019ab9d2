import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Backend } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { isMambaError } from '../../src/errors.js';
import type { WebGpuBackend, WebGpuBackendOptions } from '../../src/backend/webgpu/webgpu-backend.js';
import { deviceTokens } from '../../src/generate/device-loop.js';
import { GREEDY } from '../../src/backend/sampling.js';
import type { Mamba2Config } from '../../src/models/config.js';
import type { LanguageModel } from '../../src/models/lm.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { assertClose } from '../helpers/compare.js';
import { maxAbsDiff, PARITY, readExpected } from '../helpers/fixtures.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { rand, type Pair } from './pair.js';

/**
 * Mamba-2's WebGPU kernels (kernels/ssd-scan.wgsl, kernels/gated-rmsnorm.wgsl) against the CPU
 * reference on odd sizes: both paths of the scan (step by step; chunked with several chunk lengths),
 * groups, dt bias / softplus / limit, D, h0 in and hOut out (also the same tensor), inputs as column
 * views of one wide buffer as the mixer passes them; then the Mamba-2 fixtures on the GPU against
 * PyTorch's logits and transformers' greedy tokens.
 */

after(disposeGpu);

interface Case {
  b: number;
  l: number;
  h: number;
  p: number;
  g: number;
  n: number;
  /** chunkSize of the call (the CPU reference's chunk length). */
  chunk: number;
  D?: boolean;
  bias?: boolean;
  softplus?: boolean;
  limit?: [number, number];
  h0?: 'none' | 'own' | 'alias';
  hOut?: boolean;
}

const CASES: Case[] = [
  { b: 1, l: 1, h: 4, p: 16, g: 1, n: 16, chunk: 256, h0: 'alias' }, // the recurrent step
  { b: 2, l: 1, h: 6, p: 5, g: 2, n: 130, chunk: 1, h0: 'alias' },
  { b: 2, l: 5, h: 3, p: 7, g: 1, n: 3, chunk: 4, h0: 'own', hOut: true },
  { b: 1, l: 37, h: 8, p: 16, g: 2, n: 33, chunk: 7, hOut: true, limit: [0.05, 0.4] },
  { b: 1, l: 37, h: 4, p: 9, g: 2, n: 130, chunk: 64, h0: 'alias', D: false, bias: false },
  { b: 1, l: 300, h: 3, p: 13, g: 1, n: 8, chunk: 64, h0: 'own', hOut: true, softplus: false, bias: false },
  { b: 2, l: 300, h: 4, p: 6, g: 2, n: 17, chunk: 256, h0: 'alias' },
  { b: 1, l: 70, h: 2, p: 70, g: 1, n: 5, chunk: 4 }, // head_dim over one 64-wide tile
];

/** Runs the scan on the CPU and on `g` with the same inputs; compares y and the states. */
async function check(g: Backend, c: Case, seed: number, what: string): Promise<void> {
  const { b, l, h, p, g: ng, n } = c;
  const e = h * p,
    gn = ng * n;
  // x, B, C: column views of one (b, l, 1 + e + 2gn + 2) buffer, as the conv's output in the mixer
  const xbc = rand(g, [b, l, 3 + e + 2 * gn], seed);
  const view = (off: number, w: number): Pair => ({ c: xbc.c.narrow(off, w), g: xbc.g.narrow(off, w) });
  const x = view(1, e),
    B = view(1 + e, gn),
    C = view(1 + e + gn, gn);
  const dt =
    c.softplus === false
      ? rand(g, [b, l, h], seed + 1, { lo: 0.01, hi: 0.5, pad: 2 })
      : rand(g, [b, l, h], seed + 1, { lo: -3, hi: 1, pad: 2 });
  const A = rand(g, [h], seed + 2, { lo: -2.5, hi: -0.05 });
  const D = c.D === false ? null : rand(g, [h], seed + 3);
  const bias = c.bias === false ? null : rand(g, [h], seed + 4, { lo: -1, hi: 0.5 });
  const y = rand(g, [b, l, e], seed + 5, { pad: 1 });
  const h0 = c.h0 === 'own' || c.h0 === 'alias' ? rand(g, [b, h, p, n], seed + 6, { pad: 1 }) : null;
  const hOut = c.h0 === 'alias' ? h0 : c.hOut ? rand(g, [b, h, p, n], seed + 7) : null;
  const args = (k: 'c' | 'g') => ({
    y: y[k],
    x: x[k],
    dt: dt[k],
    A: A[k],
    B: B[k],
    C: C[k],
    D: D?.[k] ?? null,
    dtBias: bias?.[k] ?? null,
    dtSoftplus: c.softplus !== false,
    dtLimit: c.limit ?? ([-Infinity, Infinity] as const),
    nGroups: ng,
    chunkSize: c.chunk,
    h0: h0?.[k] ?? null,
    hOut: hOut?.[k] ?? null,
  });
  cpu().ssdScan(args('c'));
  g.ssdScan(args('g'));
  // f32 against the f64 reference; in chunks of 256 the decays exp(cum_t - cum_s) are differences of
  // sums reaching ~200 in f32, which costs up to ~2e-5 absolute on |y| ~ 5 (measured: 1.7e-5)
  assertClose(await y.g.read(), await y.c.read(), `${what}: y`, 2e-4, 4e-5);
  if (hOut) assertClose(await hOut.g.read(), await hOut.c.read(), `${what}: hOut`, 2e-4, 2e-5);
  if (h0 && c.h0 === 'own') assertClose(await h0.g.read(), await h0.c.read(), `${what}: h0 untouched`, 0, 0);
}

async function runAll(g: WebGpuBackend, label: string, maxLength = Infinity): Promise<void> {
  let seed = 500;
  for (const c of CASES) {
    seed += 10;
    if (c.l > maxLength) continue;
    await check(g, c, seed, `${label} ${JSON.stringify(c)}`);
  }
}

/**
 * The path and chunk length are read from `options` at every call, so one device (whose compiled
 * pipelines SwiftShader takes seconds to build) serves every variant. Short chunks only on the shorter
 * sequences: the 64 x 64 tiles of a chunk of 1 to 7 steps are nearly all padding, slow on a CPU driver.
 * The default path ('auto': step by step up to 16 steps, else chunks of 256) runs in the model tests.
 */
const PATHS: [string, Partial<WebGpuBackendOptions>, number][] = [
  ['step by step', { ssdPath: 'sequential' }, Infinity],
  ['chunked, chunk 1', { ssdPath: 'chunked', ssdChunk: 1 }, 5],
  ['chunked, chunk 4', { ssdPath: 'chunked', ssdChunk: 4 }, 5],
  ['chunked, chunk 7', { ssdPath: 'chunked', ssdChunk: 7 }, 70],
  ['chunked, chunk 64', { ssdPath: 'chunked', ssdChunk: 64 }, Infinity],
  ['chunked, chunk 256 (the default)', { ssdPath: 'chunked' }, Infinity],
];

for (const [label, o, maxLength] of PATHS) {
  test(`ssdScan ${label} matches the CPU reference`, async (t: TestContext) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const saved = { ...g.options };
    Object.assign(g.options, o);
    try {
      await runAll(g, label, maxLength);
    } finally {
      Object.assign(g.options, saved);
    }
  });
}

test('ssdScan and gatedRmsnorm on WebGPU check their arguments before dispatching (MambaError)', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const x = g.zeros([1, 3, 12]),
    dt = g.zeros([1, 3, 4]),
    A = g.zeros([4]),
    B = g.zeros([1, 3, 10]),
    y = g.zeros([1, 3, 12]);
  const base = {
    y,
    x,
    dt,
    A,
    B,
    C: B,
    D: null,
    dtBias: null,
    dtSoftplus: true,
    dtLimit: [-Infinity, Infinity] as const,
    nGroups: 2,
    chunkSize: 4,
    h0: null,
    hOut: null,
  };
  assert.throws(
    () => g.ssdScan({ ...base, nGroups: 3 }),
    (e: unknown) =>
      isMambaError(e, 'BAD_ARGUMENT') &&
      /nGroups must be a positive divisor of the 4 heads, got 3/.test((e as Error).message),
  );
  assert.throws(
    () => g.ssdScan({ ...base, hOut: g.zeros([1, 4, 3, 4]) }),
    (e: unknown) => isMambaError(e, 'SHAPE_MISMATCH') && /hOut/.test((e as Error).message),
  );
  assert.throws(
    () => g.gatedRmsnorm(y, x, null, g.zeros([12]), { groupSize: 5, eps: 1e-5, normBeforeGate: false }),
    (e: unknown) =>
      isMambaError(e, 'BAD_ARGUMENT') &&
      /groupSize must be a positive divisor of the row width 12, got 5/.test((e as Error).message),
  );
});

// ---- gated RMSNorm ---------------------------------------------------------------------------------

test('gatedRmsnorm matches the CPU reference: both orders, groups, no gate, views', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 900;
  for (const [shape, groupSize] of [
    [[2, 3, 40], 40],
    [[2, 3, 40], 8],
    [[5, 130], 65],
    [[1, 1000], 1000],
    [[3, 600], 200],
  ] as [number[], number][]) {
    for (const normBeforeGate of [false, true]) {
      for (const gated of [true, false]) {
        const e = shape[shape.length - 1];
        const x = rand(g, shape, seed, { pad: 3, lo: -2, hi: 2 });
        const z = gated ? rand(g, shape, seed + 1, { pad: 1, lo: -4, hi: 4 }) : null;
        const w = rand(g, [e], seed + 2, { lo: 0.5, hi: 1.5 });
        const out = rand(g, shape, seed + 3, { pad: 2 });
        const o = { groupSize, eps: 1e-5, normBeforeGate };
        cpu().gatedRmsnorm(out.c, x.c, z?.c ?? null, w.c, o);
        g.gatedRmsnorm(out.g, x.g, z?.g ?? null, w.g, o);
        assertClose(
          await out.g.read(),
          await out.c.read(),
          `gatedRmsnorm ${JSON.stringify({ shape, groupSize, normBeforeGate, gated })}`,
          1e-5,
          1e-6,
        );
        seed += 4;
      }
    }
  }
});

// ---- the Mamba-2 fixtures on the GPU ---------------------------------------------------------------

async function logitsOf(model: LanguageModel, ids: number[][]): Promise<Float32Array> {
  const t = model.backend.upload(Int32Array.from(ids.flat()), [ids.length, ids[0].length], 'i32');
  return model.forward(t).readFloat();
}

/**
 * Every fixture: the parallel logits against PyTorch's by both paths (step by step, which the prompt's
 * length selects by default, and chunked at the checkpoint's own chunk size), and greedy tokens through
 * the recorded device loop (the step replayed with the state updated in place). mamba2-g2-untied (2
 * groups, dt limit, biases) also: the recurrent step at every position. SwiftShader takes most of a
 * second per model step, so the rest (the host generation loop, prompts fed in pieces) is left to the
 * CPU parity tests of the same fixtures.
 */
for (const [name, full] of [
  ['mamba2-g1-tied', false],
  ['mamba2-g2-untied', true],
  ['orig-mamba2', false],
] as const) {
  test(`${name} on WebGPU: logits within 1e-4 of PyTorch's on both paths, greedy tokens identical${full ? ', recurrent steps equal the parallel form' : ''}`, async (t) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const model = await loadLanguageModel(join(PARITY, name), { backend: g });
    const chunk = (model.config as Mamba2Config).chunkSize;
    const exp = await readExpected(name);
    const b = exp.ids.length,
      l = exp.ids[0].length,
      V = exp.V;
    const parallel = await logitsOf(model, exp.ids);
    const err = maxAbsDiff(parallel, exp.logits);
    assert.ok(err < 1e-4, `parallel logits (step-by-step scan): max abs error ${err}`);
    const saved = { ...g.options };
    Object.assign(g.options, { ssdPath: 'chunked', ssdChunk: chunk });
    let chunked: Float32Array;
    try {
      chunked = await logitsOf(model, exp.ids);
    } finally {
      Object.assign(g.options, saved);
    }
    const errC = maxAbsDiff(chunked, exp.logits);
    assert.ok(errC < 1e-4, `parallel logits (chunked scan, chunk ${chunk}): max abs error ${errC}`);

    const n = exp.greedy[0].length - l;
    const st = model.initState(b);
    const logits = model.forward(g.upload(Int32Array.from(exp.ids.flat()), [b, l], 'i32'), {
      state: st,
      lastOnly: true,
    });
    const dev: number[][] = exp.ids.map((r) => [...r]);
    for await (const got of deviceTokens(model, st, logits, {
      maxNewTokens: n,
      sampling: GREEDY,
      prompts: dev.map((r) => [...r]),
    }))
      got.forEach((id, r) => dev[r].push(id));
    st.dispose();
    assert.deepEqual(dev, exp.greedy, 'deviceTokens (recorded step with the state updated in place)');
    if (!full) return;

    const state = model.initState(b);
    let worst = 0;
    for (let i = 0; i < l; i++) {
      const step = await model
        .stepIds(
          exp.ids.map((r) => r[i]),
          state,
        )
        .readFloat();
      for (let r = 0; r < b; r++)
        worst = Math.max(
          worst,
          maxAbsDiff(step.subarray(r * V, (r + 1) * V), parallel.subarray((r * l + i) * V, (r * l + i + 1) * V)),
        );
    }
    state.dispose();
    assert.ok(worst < 1e-4, `recurrent vs parallel: max abs difference ${worst}`);
  });
}
