import type { Mamba3Dims } from '../../src/backend/contract/mamba3.js';

/**
 * What the WebAssembly Mamba-3 tests (forward: mamba3.test.ts, backward: mamba3-backward.test.ts) share:
 * the backends (test/helpers/wasm-backends.ts) and the cases' dimensions.
 */
export { ts, wa, wasmOnThreads } from '../helpers/wasm-backends.js';

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
