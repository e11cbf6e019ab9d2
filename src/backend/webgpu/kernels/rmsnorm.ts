import type { Tensor } from '../../../tensor/tensor.js';
import type { WebGpuBackend } from '../webgpu-backend.js';
import { dcode, rowsGrid } from './launch.js';
import * as W from './wgsl.gen.js';

const RMSNORM = { name: 'rmsnorm', code: W.rmsnorm, access: 'rrww' };

/** residual <- residual + x (if x); out <- rmsnorm(residual) * weight. One workgroup per row. */
export function rmsnorm(bk: WebGpuBackend, out: Tensor, residual: Tensor, x: Tensor | null, weight: Tensor, eps: number, m: number, d: number): void {
  if (m === 0) return;
  const wt = dcode(weight.dtype);
  const pipe = bk.d.pipe(`rmsnorm:${!!x}:${wt}`, RMSNORM, { HAS_X: x ? 1 : 0, W_T: wt });
  bk.d.params().u(m).u(d).u(residual.offset).u(residual.ld).u(x?.offset ?? 0).u(x?.ld ?? 0).u(out.offset).u(out.ld).u(weight.offset).f(eps);
  const [gx, gy] = rowsGrid(m);
  bk.d.run(pipe, [x ? bk.buf(x) : bk.dummyR, bk.buf(weight), bk.buf(residual), bk.buf(out)], gx, gy);
}
