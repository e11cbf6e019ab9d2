import { backendOf } from '../backend/backend.js';
import type { GatedRmsnormOptions, SsdScanArgs } from '../backend/contract/inference.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * Functional forms of Mamba-2's kernels (the pattern of `ops.ts`: allocate the output on the inputs'
 * backend, run one kernel). The recurrent step calls the kernels directly with its own buffers.
 */

export type SsdScanInputs = Omit<SsdScanArgs, 'y' | 'h0' | 'hOut'> & {
  /** Initial state (b, h, p, n); not modified unless it is also `hOut`. */
  h0?: Tensor | null;
  /** Receives the final state (b, h, p, n). */
  hOut?: Tensor | null;
};

/** The SSD scan -> y (b, l, h·p), the shape of x. */
export function ssdScan(s: SsdScanInputs): Tensor {
  const bk = backendOf(s.x);
  const y = bk.alloc(s.x.shape);
  bk.ssdScan({ ...s, y, h0: s.h0 ?? null, hOut: s.hOut ?? null });
  return y;
}

/** Gated RMSNorm over groups of columns -> a new tensor of x's shape. */
export function gatedRmsnorm(x: Tensor, z: Tensor | null, weight: Tensor, o: GatedRmsnormOptions): Tensor {
  const bk = backendOf(x);
  const out = bk.alloc(x.shape);
  bk.gatedRmsnorm(out, x, z, weight, o);
  return out;
}
