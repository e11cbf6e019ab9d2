import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Mamba3Dims } from '../../src/backend/contract/mamba3.js';
import { isMambaError } from '../../src/errors.js';
import { mamba3Scan } from '../../src/ops/mamba3.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { f64, gradcheck, randn, type GradInput } from '../autograd/f64.js';

/**
 * The Mamba-3 scan's backward kernel against central differences on the f64 backend, with every
 * parameter drawn away from its initial value, for the combinations the task models do not reach:
 * the output norm, two groups of heads sharing B and C, MIMO with the norm, and a whole-state rotation.
 */
const cases: [string, Mamba3Dims][] = [
  ['SISO, 2 groups, rope 0.5', { h: 4, p: 3, n: 8, g: 2, R: 1, S: 2, aFloor: 1e-4, rotateHalves: false, eps: 1e-5 }],
  [
    'SISO, output norm, whole state rotating',
    { h: 2, p: 4, n: 6, g: 1, R: 1, S: 3, aFloor: 1e-4, rotateHalves: false, eps: 1e-5 },
  ],
  [
    'MIMO rank 3, output norm, halves',
    { h: 2, p: 3, n: 8, g: 1, R: 3, S: 2, aFloor: 1e-4, rotateHalves: true, eps: 1e-5 },
  ],
  [
    'MIMO rank 2, 2 groups, no norm',
    { h: 4, p: 2, n: 4, g: 2, R: 2, S: 2, aFloor: 1e-4, rotateHalves: true, eps: 1e-5 },
  ],
];

for (const [name, dims] of cases) {
  test(`mamba3ScanBackward: ${name}: every input's gradient matches central differences`, () => {
    const { h, p, n, g, R, S } = dims;
    const [b, l] = [2, 6];
    const W = 2 * h * p + 2 * R * g * n + 3 * h + S;
    const mimo = R > 1;
    const norm = name.includes('output norm');
    let seed = 1;
    const inp = (nm: string, shape: number[], scale = 1, offset = 0): GradInput => ({
      name: nm,
      shape,
      data: randn(
        shape.reduce((a, c) => a * c, 1),
        seed++,
        scale,
      ).map((v) => v + offset),
    });
    const inputs: GradInput[] = [
      inp('proj', [b, l, W], 1.5),
      inp('dt_bias', [h], 0.5, -0.5),
      inp('B_norm', [n], 0.3, 1),
      inp('C_norm', [n], 0.3, 1),
      inp('B_bias', [h, R, n], 0.3, 1),
      inp('C_bias', [h, R, n], 0.3, 1),
      inp('D', [h], 0.5, 1),
    ];
    if (mimo)
      inputs.push(
        inp('mimo_x', [h, R, p], 0.3, 0.5),
        inp('mimo_z', [h, R, p], 0.3, 1),
        inp('mimo_o', [h, R, p], 0.3, 0.5),
      );
    if (norm) inputs.push(inp('norm', [h * p], 0.3, 1));
    const r = gradcheck((xs) => {
      const [proj, dtBias, BNorm, CNorm, BBias, CBias, D] = xs;
      const params = {
        dtBias,
        BNorm,
        CNorm,
        BBias,
        CBias,
        D,
        mimoX: mimo ? xs[7] : null,
        mimoZ: mimo ? xs[8] : null,
        mimoO: mimo ? xs[9] : null,
        normWeight: norm ? xs[xs.length - 1] : null,
      };
      return mamba3Scan(proj, params, dims);
    }, inputs);
    assert.ok(r.worst < 1e-7, `relative error ${r.worst.toExponential(2)} at ${r.worstWhere}`);
  });
}

test('mamba3Scan refuses inconsistent arguments clearly', () => {
  const dims: Mamba3Dims = { h: 2, p: 2, n: 4, g: 1, R: 1, S: 1, aFloor: 1e-4, rotateHalves: false, eps: 1e-5 };
  const W = 2 * 4 + 2 * 4 + 6 + 1;
  const t = (shape: number[]) => f64.zeros(shape);
  const params = { dtBias: t([2]), BNorm: t([4]), CNorm: t([4]), BBias: t([2, 1, 4]), CBias: t([2, 1, 4]), D: t([2]) };
  const none = { mimoX: null, mimoZ: null, mimoO: null, normWeight: null };
  noGrad(() => {
    assert.throws(
      () => mamba3Scan(t([1, 3, W + 1]), { ...params, ...none }, dims),
      (e: unknown) =>
        isMambaError(e, 'SHAPE_MISMATCH') &&
        /proj has shape \(1, 3, 24\), expected \(1, 3, 23\)/.test((e as Error).message),
    );
    assert.throws(
      () => mamba3Scan(t([1, 3, W]), { ...params, ...none, BBias: t([2, 2, 4]) }, dims),
      (e: unknown) => isMambaError(e, 'SHAPE_MISMATCH') && /B_bias/.test((e as Error).message),
    );
    assert.throws(
      () => mamba3Scan(t([1, 3, W]), { ...params, ...none }, { ...dims, S: 3 }),
      (e: unknown) =>
        isMambaError(e, 'BAD_ARGUMENT') && /3 rotation angles need 6 state dims/.test((e as Error).message),
    );
  });
});
