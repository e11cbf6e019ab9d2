import type { GatedRmsnormOptions } from '../../contract/inference.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const GATED_RMSNORM = kernel(W.gatedRmsnorm, 'main', { name: 'gatedRmsnorm' });

/** Mamba-2's gated RMSNorm (gated-rmsnorm.wgsl): one workgroup per (row, group of columns). */
export function gatedRmsnorm(
  bk: KernelHost,
  out: Tensor,
  x: Tensor,
  z: Tensor | null,
  weight: Tensor,
  o: GatedRmsnormOptions,
  m: number,
  e: number,
): void {
  if (m * e === 0) return;
  const groups = e / o.groupSize;
  const pipe = bk.d.pipe(`gatedRmsnorm:${!!z}:${o.normBeforeGate}`, GATED_RMSNORM, {
    HAS_Z: z ? 1 : 0,
    NORM_FIRST: o.normBeforeGate ? 1 : 0,
  });
  const [gx, gy] = grid(m * groups, 1);
  bk.d.run(
    pipe,
    { x: bk.buf(x), z: z ? bk.buf(z) : bk.dummyR, w: bk.buf(weight), o: bk.buf(out) },
    {
      m,
      gs: o.groupSize,
      groups,
      xoff: x.offset,
      xld: x.ld,
      zoff: z?.offset ?? 0,
      zld: z?.ld ?? 0,
      ooff: out.offset,
      old: out.ld,
      woff: weight.offset,
      eps: o.eps,
    },
    gx,
    gy,
  );
}
