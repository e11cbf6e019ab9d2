import type { TestContext } from 'node:test';
import type { Backend } from '../../src/backend/backend.js';
import { MAMBA3_GRADIENTS, type Mamba3Dims, type Mamba3ScanBackwardArgs } from '../../src/backend/contract/mamba3.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/webgpu-backend.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertClose } from '../helpers/compare.js';
import { rand, type Pair } from './pair.js';

// The Mamba-3 WebGPU tests' shared case builders: dims, the backward's random inputs, the scan path options.

const angles = (n: number, f: number): number => Math.floor(Math.floor(n * f) / 2);

/** Mamba-3 dims with rope fraction `rope` (S = ⌊⌊n·rope⌋ / 2⌋ angles); MIMO rotates halves by default. */
export const mamba3Dims = (
  h: number,
  p: number,
  n: number,
  g: number,
  R: number,
  rope: number,
  halves = R > 1,
): Mamba3Dims => ({
  h,
  p,
  n,
  g,
  R,
  S: angles(n, rope),
  aFloor: 1e-4,
  rotateHalves: halves,
  eps: 1e-5,
});

/** Random pairs (CPU, GPU), each from the next seed counted up from `seed`, uniform in offset ± scale. */
export function pairMaker(gb: WebGpuBackend, seed: number) {
  return (shape: number[], scale = 1, offset = 0, pad = 0): Pair =>
    rand(gb, shape, seed++, { lo: offset - scale, hi: offset + scale, pad });
}

/** Mamba-3's parameters (MIMO's where R > 1, the output norm's with `norm`), drawn in this order from `pair`. */
export function mamba3Weights(pair: ReturnType<typeof pairMaker>, d: Mamba3Dims, norm: boolean) {
  const { h, p, n, R } = d;
  return {
    dtBias: pair([h], 0.5, -0.5),
    BNorm: pair([n], 0.3, 1),
    CNorm: pair([n], 0.3, 1),
    BBias: pair([h, R, n], 0.3, 1),
    CBias: pair([h, R, n], 0.3, 1),
    D: pair([h], 0.5, 1),
    mimoX: R > 1 ? pair([h, R, p], 0.3, 0.5) : null,
    mimoZ: R > 1 ? pair([h, R, p], 0.3, 1) : null,
    mimoO: R > 1 ? pair([h, R, p], 0.3, 0.5) : null,
    normWeight: norm ? pair([h * p], 0.3, 1) : null,
  };
}

/**
 * One mamba3ScanBackward case of b sequences of l tokens on both backends: random inputs (proj and dL/dy as
 * column views, the parameters, MIMO's and the output norm's where there are), from seeds counted up from
 * `seed`; `args(bk, 'c' | 'g')` gives the CPU's or the GPU's arguments with zeroed gradient buffers on `bk`.
 */
export function mamba3BackwardCase(
  gb: WebGpuBackend,
  d: Mamba3Dims,
  b: number,
  l: number,
  norm: boolean,
  seed: number,
): (bk: Backend, i: 'c' | 'g') => Mamba3ScanBackwardArgs {
  const { h, p, n, g, R } = d;
  const W = 2 * h * p + 2 * R * g * n + 3 * h + d.S;
  const pair = pairMaker(gb, seed);
  const w = {
    proj: pair([b, l, W], 1.5, 0, 3), // a column view, as the mixer's in_proj output is not
    g: pair([b, l, h * p], 1, 0, 2),
    ...mamba3Weights(pair, d, norm),
  };
  return (bk: Backend, i: 'c' | 'g'): Mamba3ScanBackwardArgs => {
    const v = Object.fromEntries(Object.entries(w).map(([k, x]) => [k, x ? x[i] : null])) as Record<
      keyof typeof w,
      Tensor
    >;
    const like = (x: Tensor | null): Tensor | null => (x ? bk.zeros(x.shape) : null);
    return {
      ...v,
      mimoX: v.mimoX ?? null,
      mimoZ: v.mimoZ ?? null,
      mimoO: v.mimoO ?? null,
      normWeight: v.normWeight ?? null,
      dims: d,
      dProj: bk.zeros(v.proj.shape),
      dDtBias: bk.zeros([h]),
      dBNorm: bk.zeros([n]),
      dCNorm: bk.zeros([n]),
      dBBias: bk.zeros([h, R, n]),
      dCBias: bk.zeros([h, R, n]),
      dD: bk.zeros([h]),
      dMimoX: like(v.mimoX),
      dMimoZ: like(v.mimoZ),
      dMimoO: like(v.mimoO),
      dNormWeight: like(v.normWeight),
    };
  };
}

/** Runs `fn` with the backend's scan path options (ssdPath, ssdChunk) set to `o`, then puts them back. */
export async function withOptions<T>(
  g: WebGpuBackend,
  o: Partial<WebGpuBackend['options']>,
  fn: () => Promise<T>,
): Promise<T> {
  const old = { ssdPath: g.options.ssdPath, ssdChunk: g.options.ssdChunk };
  Object.assign(g.options, o);
  try {
    return await fn();
  } finally {
    Object.assign(g.options, old);
  }
}

/**
 * Asserts each gradient of `x` (the GPU's) within rtol of `c`'s (the CPU reference's) plus atol times a scale:
 * the larger of the gradient's own largest magnitude and dProj's; reports each max |error| / scale.
 */
export async function assertGradientsClose(
  t: TestContext,
  label: string,
  c: Mamba3ScanBackwardArgs,
  x: Mamba3ScanBackwardArgs,
  rtol: number,
  atol: number,
): Promise<void> {
  const names = MAMBA3_GRADIENTS.map(([g]) => g);
  const report: string[] = [];
  let bigProj = 0;
  for (const v of await c.dProj.readFloat()) bigProj = Math.max(bigProj, Math.abs(v));
  for (const k of names) {
    const tc = c[k],
      tg = x[k];
    if (!tc || !tg) continue;
    const want = await tc.readFloat(),
      got = await tg.readFloat();
    let big = 0;
    for (const v of want) big = Math.max(big, Math.abs(v));
    const scale = Math.max(big, bigProj);
    let rel = 0;
    for (let i = 0; i < want.length; i++) rel = Math.max(rel, Math.abs(got[i] - want[i]) / scale);
    report.push(`${k} ${rel.toExponential(1)}`);
    assertClose(got, want, `${label}: ${k}`, rtol, atol * scale);
  }
  t.diagnostic(`${label}: max |error| / scale: ${report.join(', ')}`);
}
