import type { UnaryOp } from '../../contract/inference.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { UNARY_OPS } from './elementwise.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const UNARY_BACKWARD = kernel(W.unaryBackward, 'main', { name: 'unaryBackward' });

/** dx <- g * f'(x), y = f(x) from the forward; every view with its own row stride. */
export function unaryBackward(bk: KernelHost, op: UnaryOp, dx: Tensor, g: Tensor, x: Tensor, y: Tensor): void {
  const n = x.rows * x.cols;
  if (n === 0) return;
  const code = UNARY_OPS.indexOf(op);
  const pipe = bk.d.pipe(`unaryBackward:${code}`, UNARY_BACKWARD, { OP: code });
  const [gx, gy] = grid(n);
  bk.d.run(
    pipe,
    { g: bk.buf(g), x: bk.buf(x), y: bk.buf(y), dx: bk.buf(dx) },
    {
      rows: x.rows,
      cols: x.cols,
      n,
      doff: dx.offset,
      dld: dx.ld,
      goff: g.offset,
      gld: g.ld,
      xoff: x.offset,
      xld: x.ld,
      yoff: y.offset,
      yld: y.ld,
    },
    gx,
    gy,
  );
}
