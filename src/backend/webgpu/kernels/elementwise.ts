import type { BinaryOp, UnaryOp } from '../../contract/inference.js';
import type { Tensor } from '../../../tensor/tensor.js';
import type { WebGpuBackend } from '../webgpu-backend.js';
import { grid, rowsGrid, sameView } from './launch.js';
import * as W from './wgsl.gen.js';

/** The order of OP codes in unary.wgsl. */
const UNARY_OPS: readonly UnaryOp[] = ['silu', 'softplus', 'exp', 'neg', 'negexp', 'relu', 'gelu', 'sigmoid', 'tanh', 'square', 'sqrt', 'log'];
const BINARY_OPS: readonly BinaryOp[] = ['add', 'sub', 'mul', 'div'];

const UNARY = { name: 'unary', code: W.unary, access: 'rw' };
const BINARY = { name: 'binary', code: W.binary, access: 'rrw' };
const ARGMAX = { name: 'argmax', code: W.argmax, access: 'rw' };

export function unary(bk: WebGpuBackend, op: UnaryOp, out: Tensor, x: Tensor): void {
  const n = x.rows * x.cols;
  if (n === 0) return;
  const code = UNARY_OPS.indexOf(op);
  const inPlace = sameView(out, x);
  const pipe = bk.d.pipe(`unary:${code}:${inPlace}`, UNARY, { OP: code, IN_PLACE: inPlace ? 1 : 0 });
  bk.d.params().u(x.rows).u(x.cols).u(x.offset).u(x.ld).u(out.offset).u(out.ld).u(n);
  const [gx, gy] = grid(n);
  bk.d.run(pipe, [inPlace ? bk.dummyR : bk.buf(x), bk.buf(out)], gx, gy);
}

export function binary(bk: WebGpuBackend, op: BinaryOp, out: Tensor, a: Tensor, b: Tensor): void {
  const n = a.rows * a.cols;
  if (n === 0) return;
  const broadcast = b.size === a.cols && !(b.rows === a.rows && b.cols === a.cols);
  const aOut = sameView(out, a);
  const bOut = !broadcast && sameView(out, b);
  const code = BINARY_OPS.indexOf(op);
  const pipe = bk.d.pipe(`binary:${code}:${aOut}:${bOut}`, BINARY, { OP: code, A_IS_OUT: aOut ? 1 : 0, B_IS_OUT: bOut ? 1 : 0 });
  bk.d.params().u(a.rows).u(a.cols).u(a.offset).u(a.ld).u(b.offset).u(broadcast ? 0 : b.ld).u(out.offset).u(out.ld).u(n);
  const [gx, gy] = grid(n);
  bk.d.run(pipe, [aOut ? bk.dummyR : bk.buf(a), bOut ? bk.dummyR : bk.buf(b), bk.buf(out)], gx, gy);
}

export function argmax(bk: WebGpuBackend, out: Tensor, x: Tensor): void {
  if (x.rows === 0) return;
  const pipe = bk.d.pipe('argmax', ARGMAX);
  bk.d.params().u(x.rows).u(x.cols).u(x.offset).u(x.ld).u(out.offset);
  const [gx, gy] = rowsGrid(x.rows);
  bk.d.run(pipe, [bk.buf(x), bk.buf(out)], gx, gy);
}
