import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { grid, rowsGrid } from './launch.js';
import * as W from './wgsl.gen.js';

const DX = kernel(W.rmsnormBackward, 'rms_dx');
const DW = kernel(W.rmsnormBackward, 'rms_dw');

/** dx and dWeight of RMSNorm without a residual; each row's inv goes through a scratch buffer. */
export function rmsnormBackward(
  bk: KernelHost,
  dx: Tensor,
  dWeight: Tensor,
  g: Tensor,
  x: Tensor,
  weight: Tensor,
  eps: number,
  m: number,
  d: number,
): void {
  if (d === 0) return;
  const inv = bk.scratch(Math.max(m, 1) * 4);
  const params = {
    m,
    d,
    doff: dx.offset,
    dld: dx.ld,
    goff: g.offset,
    gld: g.ld,
    xoff: x.offset,
    xld: x.ld,
    woff: weight.offset,
    wdoff: dWeight.offset,
    eps,
  };
  if (m > 0) {
    const [rx, ry] = rowsGrid(m);
    const bufs = { g: bk.buf(g), x: bk.buf(x), w: bk.buf(weight), dx: bk.buf(dx), inv };
    bk.d.run(bk.d.pipe('rmsnormBackward.dx', DX), bufs, params, rx, ry);
  }
  const [cx, cy] = grid(d, 64);
  bk.d.run(
    bk.d.pipe('rmsnormBackward.dw', DW),
    { g: bk.buf(g), x: bk.buf(x), inv, dw: bk.buf(dWeight) },
    params,
    cx,
    cy,
  );
  bk.release(inv);
}
