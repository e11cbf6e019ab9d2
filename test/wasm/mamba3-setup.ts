import { after } from 'node:test';
import assert from 'node:assert/strict';
import type { Mamba3Dims } from '../../src/backend/contract/mamba3.js';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';

/**
 * What the WebAssembly Mamba-3 tests (forward: mamba3.test.ts, backward: mamba3-backward.test.ts) share:
 * the TypeScript reference backend and the WebAssembly one, a list that disposes the thread pools the
 * tests make, and the cases' dimensions.
 */
export const ts = new CpuBackend({ kernels: 'ts' });
export const wa = new CpuBackend({ kernels: 'wasm' });
assert.equal(wa.kernels, 'wasm', 'this engine runs the WebAssembly kernels');
export const pools: CpuBackend[] = [];
after(() => {
  for (const b of pools) b.dispose();
});

export interface Case {
  name: string;
  dims: Mamba3Dims;
  norm: boolean;
}

/** Mamba-3 dims: h heads of p channels, d_state n, g groups, rank R, S rotation angles, A floor 1e-4, eps 1e-5. */
export const dims = (
  h: number,
  p: number,
  n: number,
  g: number,
  R: number,
  S: number,
  rotateHalves: boolean,
): Mamba3Dims => ({ h, p, n, g, R, S, aFloor: 1e-4, rotateHalves, eps: 1e-5 });
