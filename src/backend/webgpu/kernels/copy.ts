import { f32ToBf16Bits, f32ToF16Bits, type DType } from '../../../tensor/dtype.js';
import type { GpuStorage } from '../gpu-buffers.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { dcode, grid } from './launch.js';
import * as W from './wgsl.gen.js';

const COPY = kernel(W.copy, 'main');
const FILL = kernel(W.fill, 'main');

/** dst <- src (checked by the backend); 16-bit destinations are written one u32 word per thread. */
export function copy(bk: KernelHost, dst: Tensor, src: Tensor): void {
  copyInto(bk, src, bk.buf(dst), dst.offset, dst.ld, dst.dtype);
}

/** The same into a raw buffer: rows of src at element `offset` with row stride `ld`, as `dtype`. */
export function copyInto(bk: KernelHost, src: Tensor, dst: GpuStorage, offset: number, ld: number, dtype: DType): void {
  const rows = src.rows,
    cols = src.cols;
  if (rows * cols === 0) return;
  const half = dtype === 'f16' || dtype === 'bf16';
  const st = src.dtype === 'i32' ? 0 : dcode(src.dtype);
  const pipe = bk.d.pipe(`copy:${st}:${half}`, COPY, { SRC_T: st, DST_HALF: half ? 1 : 0 });
  const w0 = offset >> 1;
  const n = half ? ((offset + (rows - 1) * ld + cols + 1) >> 1) - w0 : rows * cols;
  const [x, y] = grid(n);
  const params = { rows, cols, soff: src.offset, sld: src.ld, doff: offset, dld: ld, n, w0 };
  bk.d.run(pipe, { src: bk.buf(src), dst }, params, x, y);
}

/** t <- value (f32, i32 or 16-bit elements). */
export function fill(bk: KernelHost, t: Tensor, value: number): void {
  const rows = t.rows,
    cols = t.cols;
  const storage = bk.buf(t);
  if (rows * cols === 0) return;
  const half = t.dtype === 'f16' || t.dtype === 'bf16';
  let bits: number;
  if (t.dtype === 'i32') bits = value >>> 0;
  else if (t.dtype === 'f16') bits = f32ToF16Bits(value);
  else if (t.dtype === 'bf16') bits = f32ToBf16Bits(value);
  else bits = new Uint32Array(new Float32Array([value]).buffer)[0];
  const pipe = bk.d.pipe(`fill:${half}`, FILL, { HALF: half ? 1 : 0 });
  const w0 = t.offset >> 1;
  const n = half ? ((t.offset + (rows - 1) * t.ld + cols + 1) >> 1) - w0 : rows * cols;
  const [x, y] = grid(n);
  bk.d.run(pipe, { t: storage }, { rows, cols, off: t.offset, ld: t.ld, bits, n, w0 }, x, y);
}
