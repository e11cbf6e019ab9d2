import type { ReduceOp } from '../../contract/training.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const REDUCE_ROWS = kernel(W.reduceRows, 'main', { name: 'reduceRows' });

/** out[j] <- [out[j] +] sum_i f(x[i, j]) over x (m, p); out holds p contiguous elements. */
export function reduceRows(
  bk: KernelHost,
  op: ReduceOp,
  out: Tensor,
  x: Tensor,
  m: number,
  p: number,
  acc: boolean,
): void {
  if (p === 0) return;
  // columns per workgroup: 64 for wide x (coalesced rows), fewer (more threads per column) for narrow x
  let cw = 1;
  while (cw < 64 && cw < p) cw *= 2;
  const sq = op === 'sumSquares';
  const pipe = bk.d.pipe(`reduceRows:${sq}:${cw}`, REDUCE_ROWS, { SQUARES: sq ? 1 : 0, CW: cw });
  const [gx, gy] = grid(p, cw);
  const params = { m, p, xoff: x.offset, xld: x.ld, ooff: out.offset, accumulate: acc ? 1 : 0 };
  bk.d.run(pipe, { x: bk.buf(x), o: bk.buf(out) }, params, gx, gy);
}
