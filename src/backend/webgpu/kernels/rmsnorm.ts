import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { dcode, rowsGrid } from './launch.js';
import * as W from './wgsl.gen.js';

const RMSNORM = kernel(W.rmsnorm, 'main');

/** residual <- residual + xScale · x (if x); out <- rmsnorm(residual) * weight. One workgroup per row. */
export function rmsnorm(
  bk: KernelHost,
  out: Tensor,
  residual: Tensor,
  x: Tensor | null,
  weight: Tensor,
  eps: number,
  m: number,
  d: number,
  xScale = 1,
): void {
  if (m === 0) return;
  const wt = dcode(weight.dtype);
  const pipe = bk.d.pipe(`rmsnorm:${!!x}:${wt}`, RMSNORM, { HAS_X: x ? 1 : 0, W_T: wt });
  const [gx, gy] = rowsGrid(m);
  bk.d.run(
    pipe,
    { x: x ? bk.buf(x) : bk.dummyR, w: bk.buf(weight), res: bk.buf(residual), o: bk.buf(out) },
    {
      m,
      d,
      roff: residual.offset,
      rld: residual.ld,
      xoff: x?.offset ?? 0,
      xld: x?.ld ?? 0,
      ooff: out.offset,
      old: out.ld,
      woff: weight.offset,
      eps,
      xs: xScale,
    },
    gx,
    gy,
  );
}
