import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import type { Mamba3Dims } from '../../src/backend/contract/mamba3.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { maxAbsDiff, readExpected, ROOT } from '../helpers/fixtures.js';
import { greedyRows, logitsOf, stepVsParallel } from '../helpers/parity.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { mamba3Weights, pairMaker } from './mamba3-case.js';

/**
 * Mamba-3's WebGPU kernel (kernels/mamba3-scan.wgsl) against the CPU reference kernel on odd sizes
 * (groups, MIMO, the output norm, both rotation layouts, with and without a carried state), then the
 * Mamba-3 fixtures on the GPU: logits against the reference, greedy tokens, steps against the parallel form.
 */
after(disposeGpu);

const CASES: [string, Mamba3Dims, number, number][] = [
  ['SISO, 2 groups', { h: 4, p: 5, n: 12, g: 2, R: 1, S: 3, aFloor: 1e-4, rotateHalves: false, eps: 1e-5 }, 2, 9],
  ['SISO, norm, p 70', { h: 2, p: 70, n: 8, g: 1, R: 1, S: 4, aFloor: 1e-4, rotateHalves: false, eps: 1e-5 }, 1, 5],
  ['MIMO 3, norm', { h: 3, p: 7, n: 16, g: 1, R: 3, S: 4, aFloor: 1e-4, rotateHalves: true, eps: 1e-5 }, 2, 7],
  [
    'MIMO 4, n 128 (the official size)',
    { h: 2, p: 64, n: 128, g: 1, R: 4, S: 32, aFloor: 1e-4, rotateHalves: true, eps: 1e-5 },
    1,
    3,
  ],
];

for (const [label, dims, b, l] of CASES) {
  test(`mamba3Scan on WebGPU matches the CPU reference: ${label}`, async (t: TestContext) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const { h, p, n, g: G, R, S } = dims;
    const W = 2 * h * p + 2 * R * G * n + 3 * h + S;
    const norm = label.includes('norm');
    const pair = pairMaker(g, 100);
    const proj = pair([b, l, W], 1.5, 0, 3); // a column view, as the mixer's in_proj output is not
    const w = mamba3Weights(pair, dims, norm);
    const pick = (i: 'c' | 'g') =>
      Object.fromEntries(Object.entries(w).map(([k, v]) => [k, v ? v[i] : null])) as Record<keyof typeof w, never>;
    const state = [pair([b, h, S], 3, 3), pair([b, h, p, n], 0.5), pair([b, R, h, n]), pair([b, h, p])];
    const st = (i: 'c' | 'g') => ({ theta: state[0][i], ssm: state[1][i], k: state[2][i], x: state[3][i] });
    for (const withState of [false, true]) {
      const yc = cpu().zeros([b, l, h * p]),
        yg = g.zeros([b, l, h * p]);
      cpu().mamba3Scan({ y: yc, proj: proj.c, ...pick('c'), state: withState ? st('c') : null, dims });
      g.mamba3Scan({ y: yg, proj: proj.g, ...pick('g'), state: withState ? st('g') : null, dims });
      const err = maxAbsDiff(await yg.readFloat(), await yc.readFloat());
      assert.ok(err < 1e-4, `${label}, state ${withState}: y max abs error ${err}`);
      if (withState)
        for (const k of ['ssm', 'k', 'x'] as const) {
          const e2 = maxAbsDiff(await st('g')[k].readFloat(), await st('c')[k].readFloat());
          assert.ok(e2 < 1e-4, `${label}: state ${k} max abs error ${e2}`);
        }
    }
  });
}

const DIR = join(ROOT, 'fixtures', 'mamba3');
for (const name of ['siso', 'siso-norm', 'mimo', 'mimo-norm']) {
  test(`mamba3 ${name} on WebGPU: logits within 1e-4 of the reference, greedy tokens identical, steps equal the parallel form`, async (t: TestContext) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const mg = await loadLanguageModel(join(DIR, name), { backend: g });
    const exp = await readExpected(join('..', 'mamba3', name)); // fixtures/mamba3/<name>/expected.safetensors
    const err = maxAbsDiff(await logitsOf(mg, exp.ids), exp.logits);
    assert.ok(err < 1e-4, `logits max abs error vs the reference ${err}`);
    assert.deepEqual(await greedyRows(mg, exp.ids, exp.greedy), exp.greedy);
    const { worst } = await stepVsParallel(mg, exp.ids);
    assert.ok(worst < 1e-4, `step vs parallel ${worst}`);
  });
}
