import { fail } from '../../errors.js';
import type { DType } from '../../tensor/dtype.js';
import type { Tensor, TensorOwner } from '../../tensor/tensor.js';
import { checkSameBackend } from './checks.js';

/**
 * Memory: making tensors, moving data in and out, copying and filling. Every backend has all of it
 * (`hostView` and `dispose` only where they apply). A Tensor knows its backend as the `TensorOwner`
 * part of this (read, free).
 */
export interface BackendMemory extends TensorOwner {
  /** A new contiguous tensor; contents unspecified. */
  alloc(shape: readonly number[], dtype?: DType): Tensor;
  /** A new contiguous tensor of zeros. */
  zeros(shape: readonly number[], dtype?: DType): Tensor;
  /**
   * A new tensor holding `data` (f16/bf16 given as their bit patterns in a Uint16Array; q8, q4 given as
   * f32 and quantised).
   */
  upload(data: Float32Array | Uint16Array | Int32Array, shape: readonly number[], dtype?: DType): Tensor;
  /**
   * Where a backend converts 16-bit values itself (the CPU): a new f32, q8 or q4 tensor from f16/bf16 bit
   * patterns, the same as upload(their f32 values, shape, dtype) without an f32 copy on the host (a
   * checkpoint's loader uses it; absent: convert, then upload).
   */
  uploadFromHalf?(
    bits: Uint16Array,
    from: 'f16' | 'bf16',
    shape: readonly number[],
    dtype: 'f32' | 'q8' | 'q4',
  ): Tensor;
  /** All elements, contiguous; floats as f32 whatever the storage. */
  read(t: Tensor): Promise<Float32Array | Int32Array>;
  /** Releases the storage of an owning tensor (no-op on the CPU). */
  free(t: Tensor): void;
  /** Waits for queued work (no-op on the CPU). */
  sync(): Promise<void>;
  /** dst <- src, same shape; src any float dtype or i32 (i32 -> i32 only), dst f32 or matching. */
  copy(dst: Tensor, src: Tensor): void;
  /** t <- value everywhere. */
  fill(t: Tensor, value: number): void;
  /**
   * Host-memory backends only (the CPU): the typed array that holds an f32 or i32 tensor, with its
   * first element and row stride, so host code reads or writes a few elements without a copy
   * (sampling from logits, writing a step's ids). Absent where the host cannot address the memory
   * (GPUs): read and upload there. Code asks for this capability, never for a backend by name.
   */
  hostView?(t: Tensor): HostView;
  /** Releases the device (GPU backends); the backend is unusable afterwards. */
  dispose?(): void;
}

/** Where a host-memory tensor's elements are: row r starts at `data[off + r * ld]`. */
export interface HostView {
  readonly data: Float32Array | Int32Array;
  readonly off: number;
  readonly ld: number;
}

/** copy: same rows and columns; ids copy only to ids; floats convert to f32 or copy to their own dtype. */
export function checkCopy(dst: Tensor, src: Tensor): void {
  checkSameBackend('copy', dst, src);
  if (dst.rows !== src.rows || dst.cols !== src.cols)
    fail('SHAPE_MISMATCH', `copy: ${dst.toString()} <- ${src.toString()}`);
  if (src.dtype === 'i32' || dst.dtype === 'i32') {
    if (src.dtype !== dst.dtype) fail('DTYPE_MISMATCH', `copy: ${src.dtype} -> ${dst.dtype}`);
  } else if (dst.dtype !== 'f32' && dst.dtype !== src.dtype)
    fail('DTYPE_MISMATCH', `copy: ${src.dtype} -> ${dst.dtype}`);
}
