import { after, test } from 'node:test';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import type { SsdScanBackwardArgs } from '../../src/backend/contract/training.js';
import { assertClose } from '../helpers/compare.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { both, rand, type Pair } from './pair.js';

// Mamba-2's SSD scan backward on WebGPU against the CPU reference (f64 sums there, f32 here): odd
// sizes, groups of heads sharing B and C, recompute chunks that do not divide the length, strided views
// (x, dt, B, C as windows of wider tensors, as the mixer passes them), with and without D, dt_bias,
// softplus, h0, and a dt clamp that bites. Tolerance: 1e-5 relative (1e-5 absolute near zero), as the
// selective scan's backward test.

after(disposeGpu);
const C = cpu();

test('ssdScanBackward: groups, every optional input, clamp, chunked recompute, odd sizes, strided views', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 900;
  for (const [b, l, h, p, ng, n, chunk, full, limit] of [
    [1, 1, 1, 1, 1, 1, 64, true, [0, Infinity]],
    [2, 11, 6, 3, 3, 3, 4, true, [0, Infinity]],
    [2, 37, 4, 5, 2, 16, 8, true, [0.05, 0.4]],
    [1, 20, 3, 7, 1, 5, 7, false, [-Infinity, Infinity]],
    [3, 13, 2, 66, 1, 4, 64, true, [0, Infinity]],
    [1, 70, 4, 2, 4, 3, 16, false, [0, Infinity]],
  ] as const) {
    const e = h * p;
    const r = (shape: number[], o: { pad?: number; lo?: number; hi?: number } = {}) => rand(g, shape, seed++, o);
    const x = r([b, l, e], { pad: 1 });
    // without softplus, dt = raw (+ bias) must be positive: a stable recurrence
    const dt = full ? r([b, l, h], { pad: 2, lo: -2, hi: 1 }) : r([b, l, h], { pad: 1, lo: 0.01, hi: 0.5 });
    const A = r([h], { lo: -2, hi: -0.1 });
    const B = r([b, l, ng * n], { pad: 2 });
    const Cm = r([b, l, ng * n], { pad: 1 });
    const D = full ? r([h]) : null;
    const bias = full ? r([h], { lo: -0.5, hi: 0.5 }) : null;
    const h0 = full ? r([b, h, p, n]) : null;
    const dy = r([b, l, e], { pad: 1 });
    const dx = r([b, l, e], { pad: 1 }),
      dDt = r([b, l, h], { pad: 1 }),
      dA = r([h]),
      dB = r([b, l, ng * n], { pad: 1 }),
      dC = r([b, l, ng * n]);
    const dD = D ? r([h]) : null,
      dBias = bias ? r([h]) : null,
      dh0 = h0 ? r([b, h, p, n]) : null;
    const args = (s: 'c' | 'g'): SsdScanBackwardArgs => ({
      x: x[s],
      dt: dt[s],
      A: A[s],
      B: B[s],
      C: Cm[s],
      D: D?.[s] ?? null,
      dtBias: bias?.[s] ?? null,
      dtSoftplus: full,
      dtLimit: limit,
      nGroups: ng,
      chunkSize: 8,
      h0: h0?.[s] ?? null,
      dy: dy[s],
      dx: dx[s],
      dDt: dDt[s],
      dA: dA[s],
      dB: dB[s],
      dC: dC[s],
      dD: dD?.[s] ?? null,
      dDtBias: dBias?.[s] ?? null,
      dh0: dh0?.[s] ?? null,
      chunk,
    });
    C.ssdScanBackward(args('c'));
    g.ssdScanBackward(args('g'));
    const what = `ssdScanBackward b=${b} l=${l} h=${h} p=${p} g=${ng} n=${n} chunk=${chunk} limit=${limit.join('..')}`;
    const outs: Record<string, Pair | null> = { dx, dDt, dA, dB, dC, dD, dBias, dh0 };
    for (const [name, pr] of Object.entries(outs)) {
      if (!pr) continue;
      const [gv, cv] = await both(pr);
      let worst = 0;
      for (let i = 0; i < cv.length; i++)
        worst = Math.max(worst, Math.abs(gv[i] - cv[i]) / Math.max(Math.abs(cv[i]), 1e-3));
      t.diagnostic(`${what} ${name}: max relative error ${worst.toExponential(2)}`);
      assertClose(gv, cv, `${what} ${name}`, 1e-5, 1e-5);
    }
  }
});
