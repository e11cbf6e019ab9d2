import type { Backend } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { f32ToHalf, type DType } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { randomArray } from '../helpers/compare.js';

/** The same data on the CPU (reference) and on the backend under test. */
export interface Pair {
  c: Tensor;
  g: Tensor;
}

/** Uploads `data` (f32 values; converted for 16-bit dtypes) to both backends. */
export function upload(
  gb: Backend,
  data: Float32Array | Int32Array,
  shape: number[],
  dtype: DType = data instanceof Int32Array ? 'i32' : 'f32',
): Pair {
  const arr = dtype === 'f16' || dtype === 'bf16' ? f32ToHalf(data as Float32Array, dtype) : data;
  return { c: cpu().upload(arr, shape, dtype), g: gb.upload(arr, shape, dtype) };
}

/** A random tensor of `shape`; with `pad`, a narrow view (columns [pad, pad + last)) of a wider one. */
export function rand(
  gb: Backend,
  shape: number[],
  seed: number,
  o: { dtype?: DType; pad?: number; lo?: number; hi?: number } = {},
): Pair {
  const pad = o.pad ?? 0;
  const cols = shape[shape.length - 1];
  const wide = [...shape.slice(0, -1), cols + 2 * pad];
  const n = wide.reduce((a, b) => a * b, 1);
  const p = upload(gb, randomArray(n, seed, o.lo ?? -1, o.hi ?? 1), wide, o.dtype ?? 'f32');
  if (!pad) return p;
  return { c: p.c.narrow(pad, cols), g: p.g.narrow(pad, cols) };
}

/** Reads both sides. */
export async function both(p: Pair): Promise<[Float32Array | Int32Array, Float32Array | Int32Array]> {
  return [await p.g.read(), await p.c.read()];
}
