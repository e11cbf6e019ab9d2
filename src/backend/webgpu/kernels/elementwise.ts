import type { BinaryOp, UnaryOp } from '../../contract/inference.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { grid, rowsGrid, sameView } from './launch.js';
import * as W from './wgsl.gen.js';

/** The order of OP codes in unary.wgsl. */
export const UNARY_OPS: readonly UnaryOp[] = [
  'silu',
  'softplus',
  'exp',
  'neg',
  'negexp',
  'relu',
  'gelu',
  'sigmoid',
  'tanh',
  'square',
  'sqrt',
  'log',
];
const BINARY_OPS: readonly BinaryOp[] = ['add', 'sub', 'mul', 'div'];

const UNARY = kernel(W.unary, 'main');
const BINARY = kernel(W.binary, 'main');
const ARGMAX = kernel(W.argmax, 'main');

export function unary(bk: KernelHost, op: UnaryOp, out: Tensor, x: Tensor): void {
  const n = x.rows * x.cols;
  if (n === 0) return;
  const code = UNARY_OPS.indexOf(op);
  const inPlace = sameView(out, x);
  const pipe = bk.d.pipe(`unary:${code}:${inPlace}`, UNARY, { OP: code, IN_PLACE: inPlace ? 1 : 0 });
  const [gx, gy] = grid(n);
  bk.d.run(
    pipe,
    { x: inPlace ? bk.dummyR : bk.buf(x), o: bk.buf(out) },
    { rows: x.rows, cols: x.cols, xoff: x.offset, xld: x.ld, ooff: out.offset, old: out.ld, n },
    gx,
    gy,
  );
}

export function binary(bk: KernelHost, op: BinaryOp, out: Tensor, a: Tensor, b: Tensor): void {
  const n = a.rows * a.cols;
  if (n === 0) return;
  const broadcast = b.size === a.cols && !(b.rows === a.rows && b.cols === a.cols);
  const aOut = sameView(out, a);
  const bOut = !broadcast && sameView(out, b);
  const code = BINARY_OPS.indexOf(op);
  const pipe = bk.d.pipe(`binary:${code}:${aOut}:${bOut}`, BINARY, {
    OP: code,
    A_IS_OUT: aOut ? 1 : 0,
    B_IS_OUT: bOut ? 1 : 0,
  });
  const [gx, gy] = grid(n);
  bk.d.run(
    pipe,
    { a: aOut ? bk.dummyR : bk.buf(a), b: bOut ? bk.dummyR : bk.buf(b), o: bk.buf(out) },
    {
      rows: a.rows,
      cols: a.cols,
      aoff: a.offset,
      ald: a.ld,
      boff: b.offset,
      bld: broadcast ? 0 : b.ld,
      ooff: out.offset,
      old: out.ld,
      n,
    },
    gx,
    gy,
  );
}

export function argmax(bk: KernelHost, out: Tensor, x: Tensor): void {
  if (x.rows === 0) return;
  const pipe = bk.d.pipe('argmax', ARGMAX);
  const [gx, gy] = rowsGrid(x.rows);
  const params = { rows: x.rows, cols: x.cols, xoff: x.offset, xld: x.ld, ooff: out.offset };
  bk.d.run(pipe, { x: bk.buf(x), o: bk.buf(out) }, params, gx, gy);
}
