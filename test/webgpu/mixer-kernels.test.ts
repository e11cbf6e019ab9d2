import { after, test, type TestContext } from 'node:test';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { assertClose } from '../helpers/compare.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { both, rand, upload, type Pair } from './pair.js';

// The kernels of the task mixers S4D, H3 and Hyena on WebGPU (fftConv, ssmConvKernel and their
// gradients) against the CPU reference (f64 there, f32 here) on odd sizes and strided views. Tolerance:
// 1e-5 relative, 1e-5 absolute near zero (an f32 FFT's error is relative to the signal's norm).

after(disposeGpu);
const C = cpu();

async function check(t: TestContext, p: Pair, what: string, rtol = 1e-5, atol = 1e-5): Promise<void> {
  const [g, c] = await both(p);
  let worst = 0;
  for (let i = 0; i < c.length; i++) worst = Math.max(worst, Math.abs(g[i] - c[i]) / Math.max(Math.abs(c[i]), 1e-3));
  t.diagnostic(`${what}: max relative error ${worst.toExponential(2)}`);
  assertClose(g, c, what, rtol, atol);
}

test('fftConv and fftConvBackward: odd lengths, long filters, batches, strided views', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 1000;
  for (const [b, l, e, lk] of [
    [1, 1, 1, 1],
    [2, 7, 3, 9],
    [3, 37, 5, 37],
    [1, 100, 2, 130],
    [2, 257, 3, 300],
  ] as const) {
    const r = (shape: number[], pad = 0) => rand(g, shape, seed++, { pad });
    const u = r([b, l, e], 1),
      K = r([lk, e], 2),
      y = r([b, l, e], 1);
    C.fftConv(y.c, u.c, K.c);
    g.fftConv(y.g, u.g, K.g);
    const what = `b=${b} l=${l} e=${e} lk=${lk}`;
    await check(t, y, `fftConv ${what}`);
    const gr = r([b, l, e], 2),
      du = r([b, l, e], 1),
      dK = r([lk, e], 1);
    C.fftConvBackward(du.c, dK.c, gr.c, u.c, K.c);
    g.fftConvBackward(du.g, dK.g, gr.g, u.g, K.g);
    await check(t, du, `fftConvBackward du ${what}`);
    await check(t, dK, `fftConvBackward dK ${what}`);
  }
});

test('ssmConvKernel and its backward: S4D-Lin (complex) and S4D-Real modes, odd sizes, strided views', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 1100;
  for (const [L, e, N, real] of [
    [1, 1, 1, false],
    [13, 3, 4, false],
    [64, 5, 7, false],
    [50, 4, 3, true],
    [300, 2, 8, false],
  ] as const) {
    const r = (shape: number[], o: { pad?: number; lo?: number; hi?: number } = {}) => rand(g, shape, seed++, o);
    const dt = r([e], { lo: 0.001, hi: 0.1 });
    const ARe = r([e, N], { pad: 1, lo: -1, hi: -0.3 });
    const im = new Float32Array(e * N);
    for (let c = 0; c < e; c++) for (let n = 0; n < N; n++) im[c * N + n] = real ? 0 : Math.PI * n + 0.1 * c;
    const AIm = upload(g, im, [e, N]);
    const CRe = r([e, N], { pad: 2 });
    const CIm = real ? upload(g, new Float32Array(e * N), [e, N]) : r([e, N]);
    const scale = real ? 1 : 2;
    const K = r([L, e], { pad: 1 });
    const p = (s: 'c' | 'g') => ({ dt: dt[s], ARe: ARe[s], AIm: AIm[s], CRe: CRe[s], CIm: CIm[s], scale });
    C.ssmConvKernel({ ...p('c'), K: K.c });
    g.ssmConvKernel({ ...p('g'), K: K.g });
    const what = `L=${L} e=${e} N=${N} ${real ? 'real' : 'complex'}`;
    await check(t, K, `ssmConvKernel ${what}`);
    const gr = r([L, e], { pad: 1 });
    const dDt = r([e]),
      dARe = r([e, N], { pad: 1 }),
      dAIm = r([e, N]),
      dCRe = r([e, N]),
      dCIm = r([e, N], { pad: 1 });
    const o = (s: 'c' | 'g') => ({ g: gr[s], dDt: dDt[s], dARe: dARe[s], dAIm: dAIm[s], dCRe: dCRe[s], dCIm: dCIm[s] });
    C.ssmConvKernelBackward({ ...p('c'), ...o('c') });
    g.ssmConvKernelBackward({ ...p('g'), ...o('g') });
    for (const [name, pr] of Object.entries({ dDt, dARe, dAIm, dCRe, dCIm })) await check(t, pr, `${name} ${what}`);
  }
});

test('diagonalSsmScan (the recurrent mode of S4D and H3): with and without a state and D, one step and many', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 1200;
  for (const [b, l, e, N, full] of [
    [1, 1, 1, 1, true],
    [2, 37, 3, 4, true],
    [3, 1, 5, 3, true],
    [1, 20, 4, 2, false],
  ] as const) {
    const r = (shape: number[], o: { pad?: number; lo?: number; hi?: number } = {}) => rand(g, shape, seed++, o);
    const dt = r([e], { lo: 0.001, hi: 0.1 });
    const ARe = r([e, N], { lo: -1, hi: -0.3 });
    const AIm = r([e, N], { pad: 1, lo: 0, hi: 10 });
    const CRe = r([e, N]),
      CIm = r([e, N], { pad: 1 });
    const u = r([b, l, e], { pad: 1 }),
      y = r([b, l, e], { pad: 2 });
    const D = full ? r([e]) : null,
      state = full ? r([b, e, 2 * N], { pad: 1 }) : null;
    const args = (s: 'c' | 'g') => ({
      dt: dt[s],
      ARe: ARe[s],
      AIm: AIm[s],
      CRe: CRe[s],
      CIm: CIm[s],
      scale: 2,
      u: u[s],
      y: y[s],
      D: D?.[s] ?? null,
      state: state?.[s] ?? null,
    });
    C.diagonalSsmScan(args('c'));
    g.diagonalSsmScan(args('g'));
    const what = `diagonalSsmScan b=${b} l=${l} e=${e} N=${N}${full ? ' state, D' : ''}`;
    await check(t, y, `${what} y`);
    if (state) await check(t, state, `${what} state`);
  }
});
