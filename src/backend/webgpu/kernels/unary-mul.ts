import type { UnaryOp } from '../../contract/inference.js';
import { fail } from '../../../errors.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { UNARY_OPS } from './elementwise.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const UNARY_MUL = kernel(W.unaryMul, 'main');

/** out <- f(x) ⊙ y over (rows, cols) views, one thread per element (unary-mul.wgsl). */
export function unaryMul(bk: KernelHost, op: UnaryOp, out: Tensor, x: Tensor, y: Tensor): void {
  const n = x.rows * x.cols;
  if (n === 0) return;
  // one buffer may not be bound both read-only and writable in one dispatch
  if (out.storage === x.storage || out.storage === y.storage)
    fail('BAD_ARGUMENT', `unaryMul: out ${out.toString()} shares its storage with x or y; expected a separate buffer`);
  const pipe = bk.d.pipe(`unaryMul:${UNARY_OPS.indexOf(op)}`, UNARY_MUL, { OP: UNARY_OPS.indexOf(op) });
  const [gx, gy] = grid(n);
  bk.d.run(
    pipe,
    { x: bk.buf(x), y: bk.buf(y), o: bk.buf(out) },
    {
      rows: x.rows,
      cols: x.cols,
      xoff: x.offset,
      xld: x.ld,
      yoff: y.offset,
      yld: y.ld,
      ooff: out.offset,
      old: out.ld,
      n,
    },
    gx,
    gy,
  );
}
