import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import type { Mamba3Dims, Mamba3ScanArgs } from '../../src/backend/contract/mamba3.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/webgpu-backend.js';
import { join } from 'node:path';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { maxAbsDiff, readExpected, ROOT } from '../helpers/fixtures.js';
import { logitsOf, stepVsParallel } from '../helpers/parity.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { mamba3Weights, pairMaker, withOptions } from './mamba3-case.js';
import type { Pair } from './pair.js';

/**
 * Mamba-3's chunked forward on WebGPU (kernels/mamba3-chunked.wgsl around Mamba-2's chunked SSD kernels)
 * against the CPU reference (the token scan, the specification) on odd sizes: one token, lengths that are
 * not a multiple of the chunk, several chunks, with and without a carried state (its final θ, H, k and x
 * too, so decode goes on from it), odd head dims and d_state, fewer angles than pairs (rope fraction < 1),
 * both rotation layouts, groups, the output norm, MIMO ranks 2 to 4; then a prompt in two calls (chunked, then the token
 * scan) against the CPU in one; and the fixtures' models (SISO and MIMO) with every prompt chunked.
 */
after(disposeGpu);

const base = { aFloor: 1e-4, eps: 1e-5 };
const CASES: [string, Omit<Mamba3Dims, keyof typeof base>, number, number, number][] = [
  // label, dims, b, l, chunk
  ['one token', { h: 2, p: 5, n: 12, g: 1, R: 1, S: 3, rotateHalves: false }, 2, 1, 4],
  ['l 7, chunk 4, odd p and n, 2 groups', { h: 4, p: 5, n: 13, g: 2, R: 1, S: 3, rotateHalves: false }, 2, 7, 4],
  ['l 11, chunk 3, halves, norm', { h: 3, p: 7, n: 12, g: 1, R: 1, S: 4, rotateHalves: true }, 1, 11, 3],
  ['l 20, chunk 8, p 70, norm', { h: 2, p: 70, n: 16, g: 1, R: 1, S: 5, rotateHalves: false }, 1, 20, 8],
  ['l 9, chunk 16 (one chunk)', { h: 2, p: 3, n: 10, g: 2, R: 1, S: 2, rotateHalves: false }, 3, 9, 16],
  [
    'l 40, 70 angles (the angle walk in blocks of 29 tokens), chunk 16',
    { h: 2, p: 3, n: 142, g: 1, R: 1, S: 70, rotateHalves: false },
    1,
    40,
    16,
  ],
  ['l 70, the default chunk (64)', { h: 2, p: 4, n: 8, g: 1, R: 1, S: 2, rotateHalves: true }, 2, 70, 0],
  ['MIMO 2, one token', { h: 2, p: 5, n: 12, g: 1, R: 2, S: 3, rotateHalves: true }, 2, 1, 4],
  ['MIMO 3, l 9, chunk 4, 2 groups, norm', { h: 4, p: 7, n: 10, g: 2, R: 3, S: 2, rotateHalves: true }, 2, 9, 4],
  ['MIMO 4, l 13, chunk 16, neighbour pairs', { h: 2, p: 6, n: 16, g: 1, R: 4, S: 4, rotateHalves: false }, 1, 13, 16],
  // p 130: three columns a thread of the MIMO readout (64 threads), the last of them on two threads only
  ['MIMO 2, l 10, chunk 4, p 130, norm', { h: 1, p: 130, n: 8, g: 1, R: 2, S: 2, rotateHalves: false }, 1, 10, 4],
];

interface Inputs {
  proj: Pair;
  w: Record<string, Pair | null>;
  state: Pair[];
}

function inputs(g: WebGpuBackend, dims: Mamba3Dims, b: number, l: number, norm: boolean): Inputs {
  const { h, p, n, g: G, R, S } = dims;
  const W = 2 * h * p + 2 * R * G * n + 3 * h + S;
  const pair = pairMaker(g, 300);
  return {
    proj: pair([b, l, W], 1.5, 0, 3), // a column view, as the mixer's in_proj output
    w: mamba3Weights(pair, dims, norm),
    state: [pair([b, h, S], 3, 3), pair([b, h, p, n], 0.5), pair([b, R, h, n]), pair([b, h, p])],
  };
}

type Weights = Omit<Mamba3ScanArgs, 'y' | 'proj' | 'state' | 'dims'>;
const pick = (w: Inputs['w'], i: 'c' | 'g') =>
  Object.fromEntries(Object.entries(w).map(([k, v]) => [k, v ? v[i] : null])) as unknown as Weights;

for (const [label, d, b, l, chunk] of CASES) {
  test(`mamba3Scan's chunked form on WebGPU matches the CPU reference: ${label}`, async (t: TestContext) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const dims: Mamba3Dims = { ...base, ...d };
    const { h, p } = dims;
    const { proj, w, state } = inputs(g, dims, b, l, label.includes('norm'));
    const st = (i: 'c' | 'g') => ({ theta: state[0][i], ssm: state[1][i], k: state[2][i], x: state[3][i] });
    for (const withState of [false, true]) {
      const yc = cpu().zeros([b, l, h * p]),
        yg = g.zeros([b, l, h * p]);
      cpu().mamba3Scan({ y: yc, proj: proj.c, ...pick(w, 'c'), state: withState ? st('c') : null, dims });
      await withOptions(g, { ssdPath: 'chunked', ssdChunk: chunk }, async () => {
        g.mamba3Scan({ y: yg, proj: proj.g, ...pick(w, 'g'), state: withState ? st('g') : null, dims });
      });
      const err = maxAbsDiff(await yg.readFloat(), await yc.readFloat());
      assert.ok(err < 2e-4, `${label}, state ${withState}: y max abs error ${err}`);
      if (withState)
        for (const k of ['theta', 'ssm', 'k', 'x'] as const) {
          const e2 = maxAbsDiff(await st('g')[k].readFloat(), await st('c')[k].readFloat());
          assert.ok(e2 < 2e-4, `${label}: state ${k} max abs error ${e2}`);
        }
    }
  });
}

test("mamba3Scan on WebGPU: a chunked prefill then token steps equal the CPU's one scan", async (t: TestContext) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const dims: Mamba3Dims = { ...base, h: 2, p: 6, n: 14, g: 1, R: 1, S: 5, rotateHalves: false };
  const { h, p, n, S } = dims;
  const b = 2,
    l = 13,
    l1 = 10;
  const { proj, w } = inputs(g, dims, b, l, true);
  const zeros = (k: 'c' | 'g') => {
    const bk = k === 'c' ? cpu() : g;
    return {
      theta: bk.zeros([b, h, S]),
      ssm: bk.zeros([b, h, p, n]),
      k: bk.zeros([b, 1, h, n]),
      x: bk.zeros([b, h, p]),
    };
  };
  const sc = zeros('c'),
    sg = zeros('g');
  const yc = cpu().zeros([b, l, h * p]);
  cpu().mamba3Scan({ y: yc, proj: proj.c, ...pick(w, 'c'), state: sc, dims });
  // the GPU: tokens [0, l1) chunked (chunk 4), then each further token by the scan (the decode step)
  const projAll = await proj.g.readFloat();
  const W = proj.g.cols;
  const rowsOf = (t0: number, t1: number) => {
    const out = new Float32Array(b * (t1 - t0) * W);
    for (let bi = 0; bi < b; bi++)
      for (let t2 = t0; t2 < t1; t2++)
        out.set(projAll.subarray((bi * l + t2) * W, (bi * l + t2 + 1) * W), (bi * (t1 - t0) + t2 - t0) * W);
    return g.upload(out, [b, t1 - t0, W]);
  };
  const ys: Float32Array[] = [];
  const y1 = g.zeros([b, l1, h * p]);
  await withOptions(g, { ssdPath: 'chunked', ssdChunk: 4 }, async () => {
    g.mamba3Scan({ y: y1, proj: rowsOf(0, l1), ...pick(w, 'g'), state: sg, dims });
  });
  ys.push(await y1.readFloat());
  await withOptions(g, { ssdPath: 'sequential' }, async () => {
    for (let t2 = l1; t2 < l; t2++) {
      const yt = g.zeros([b, 1, h * p]);
      g.mamba3Scan({ y: yt, proj: rowsOf(t2, t2 + 1), ...pick(w, 'g'), state: sg, dims });
      ys.push(await yt.readFloat());
    }
  });
  const want = await yc.readFloat();
  const e = h * p;
  let worst = 0;
  for (let bi = 0; bi < b; bi++)
    for (let t2 = 0; t2 < l; t2++) {
      const got =
        t2 < l1
          ? ys[0].subarray((bi * l1 + t2) * e, (bi * l1 + t2 + 1) * e)
          : ys[t2 - l1 + 1].subarray(bi * e, (bi + 1) * e);
      worst = Math.max(worst, maxAbsDiff(got, want.subarray((bi * l + t2) * e, (bi * l + t2 + 1) * e)));
    }
  assert.ok(worst < 2e-4, `y max abs error ${worst}`);
  for (const k of ['theta', 'ssm', 'k', 'x'] as const) {
    const e2 = maxAbsDiff(await sg[k].readFloat(), await sc[k].readFloat());
    assert.ok(e2 < 2e-4, `state ${k} max abs error ${e2}`);
  }
});

for (const name of ['siso', 'siso-norm', 'mimo', 'mimo-norm']) {
  test(`mamba3 ${name} on WebGPU with the chunked form (chunk 3): logits within 1e-4 of the reference, steps equal the parallel form`, async (t: TestContext) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const mg = await loadLanguageModel(join(ROOT, 'fixtures', 'mamba3', name), { backend: g });
    const exp = await readExpected(join('..', 'mamba3', name));
    await withOptions(g, { ssdPath: 'chunked', ssdChunk: 3 }, async () => {
      const err = maxAbsDiff(await logitsOf(mg, exp.ids), exp.logits);
      assert.ok(err < 1e-4, `logits max abs error vs the reference ${err}`);
      const { worst } = await stepVsParallel(mg, exp.ids);
      assert.ok(worst < 1e-4, `step vs parallel ${worst}`);
    });
  });
}
