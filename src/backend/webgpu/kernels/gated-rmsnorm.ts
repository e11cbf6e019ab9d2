import type { GatedRmsnormOptions } from '../../contract/inference.js';
import type { Tensor } from '../../../tensor/tensor.js';
import type { WebGpuBackend } from '../webgpu-backend.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const GATED_RMSNORM = { name: 'gatedRmsnorm', code: W.gatedRmsnorm, access: 'rrrw' };

/** Mamba-2's gated RMSNorm (gated-rmsnorm.wgsl): one workgroup per (row, group of columns). */
export function gatedRmsnorm(bk: WebGpuBackend, out: Tensor, x: Tensor, z: Tensor | null, weight: Tensor, o: GatedRmsnormOptions, m: number, e: number): void {
  if (m * e === 0) return;
  const groups = e / o.groupSize;
  const pipe = bk.d.pipe(`gatedRmsnorm:${!!z}:${o.normBeforeGate}`, GATED_RMSNORM, { HAS_Z: z ? 1 : 0, NORM_FIRST: o.normBeforeGate ? 1 : 0 });
  bk.d.params().u(m).u(o.groupSize).u(groups).u(x.offset).u(x.ld).u(z?.offset ?? 0).u(z?.ld ?? 0).u(out.offset).u(out.ld).u(weight.offset).f(o.eps);
  const [gx, gy] = grid(m * groups, 1);
  bk.d.run(pipe, [bk.buf(x), z ? bk.buf(z) : bk.dummyR, bk.buf(weight), bk.buf(out)], gx, gy);
}
