import type { SelectiveScanBackwardArgs } from '../../src/backend/contract/training.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/webgpu-backend.js';
import { rand, type Pair } from './pair.js';

/** One selective-scan gradient case: (b, l, e, n), `full` adds D, z, the delta bias, h0 and their gradients. */
export interface ScanBackwardCase {
  b: number;
  l: number;
  e: number;
  n: number;
  /** The recompute chunk; undefined leaves the launcher's default. */
  chunk?: number | undefined;
  full: boolean;
  /** delta through softplus (else dt = delta, drawn positive so that the recurrence is stable). */
  softplus: boolean;
}

/**
 * Random inputs and gradient buffers of a case on both backends (the gradient buffers start random:
 * the kernels must overwrite or add exactly as the CPU's do), from seeds counted up from `seed`.
 * `args('c' | 'g')` is the call for one side; `grads` the outputs to compare, null where absent.
 */
export function scanBackwardCase(
  g: WebGpuBackend,
  { b, l, e, n, chunk, full, softplus }: ScanBackwardCase,
  seed: number,
): { args: (s: 'c' | 'g') => SelectiveScanBackwardArgs; grads: Record<string, Pair | null> } {
  const r = (shape: number[], o: { pad?: number; lo?: number; hi?: number } = {}) => rand(g, shape, seed++, o);
  const u = r([b, l, e], { pad: 1 });
  const delta = softplus ? r([b, l, e], { lo: -2, hi: 1 }) : r([b, l, e], { lo: 0.01, hi: 0.5 });
  const A = r([e, n], { lo: -2, hi: -0.1 });
  const B = r([b, l, n], { pad: 2 });
  const Cm = r([b, l, n]);
  const D = full ? r([e]) : null;
  const z = full ? r([b, l, e], { pad: 1 }) : null;
  const bias = full ? r([e], { lo: -0.5, hi: 0.5 }) : null;
  const h0 = full ? r([b, e, n]) : null;
  const dy = r([b, l, e], { pad: 1 });
  const du = r([b, l, e], { pad: 1 }),
    dDelta = r([b, l, e]),
    dA = r([e, n]),
    dB = r([b, l, n], { pad: 1 }),
    dC = r([b, l, n]);
  const dD = D ? r([e]) : null,
    dz = z ? r([b, l, e]) : null,
    dBias = bias ? r([e]) : null,
    dh0 = h0 ? r([b, e, n]) : null;
  const args = (s: 'c' | 'g'): SelectiveScanBackwardArgs => ({
    u: u[s],
    delta: delta[s],
    A: A[s],
    B: B[s],
    C: Cm[s],
    D: D?.[s] ?? null,
    z: z?.[s] ?? null,
    deltaBias: bias?.[s] ?? null,
    deltaSoftplus: softplus,
    h0: h0?.[s] ?? null,
    dy: dy[s],
    du: du[s],
    dDelta: dDelta[s],
    dA: dA[s],
    dB: dB[s],
    dC: dC[s],
    dD: dD?.[s] ?? null,
    dz: dz?.[s] ?? null,
    dDeltaBias: dBias?.[s] ?? null,
    dh0: dh0?.[s] ?? null,
    ...(chunk !== undefined ? { chunk } : {}),
  });
  return { args, grads: { du, dDelta, dA, dB, dC, dD, dz, dBias, dh0 } };
}
