import { fail, fmtShape } from '../errors.js';
import { recordNarrow, recordReshape } from '../autograd/views.js';
import type { Backend } from '../backend/backend.js';
import type { DType } from './dtype.js';
import { numel, sameShape } from './shape.js';

/**
 * A tensor: a shape, an element type and a window into a backend's storage.
 *
 * Layout: row-major over `rows x cols`, where `cols` is the last dimension and `rows` the product of
 * the others. Row `r` starts at element `offset + r * ld` of the storage (`ld`, the leading
 * dimension, as in BLAS). A contiguous tensor has `offset = 0, ld = cols`; `narrow` makes views onto a
 * window of columns (how `xz` splits into `u` and `z` without a copy), and every kernel takes such
 * views. Views never change the last dimension's stride: elements within a row are adjacent.
 *
 * Lifetime: storage is freed by `dispose()` or by the `scope` that created the tensor (see `scope.ts`).
 * A CPU tensor nobody disposed is freed once it is garbage, but V8 does not see the arena memory
 * behind it, so loops that allocate (training steps) must run in scopes.
 */
export class Tensor {
  readonly backend: Backend;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Backend-specific storage handle (a typed array on the CPU, a GPUBuffer on WebGPU). */
  readonly storage: unknown;
  /** First element of row 0 within the storage, in elements. */
  readonly offset: number;
  /** Elements between the starts of consecutive rows. */
  readonly ld: number;
  /** The tensor whose storage this view shares, or undefined for an owner. */
  readonly base: Tensor | undefined;
  /** Set by autograd: the gradient accumulated for this tensor. */
  grad: Tensor | undefined;
  /** Set by autograd: whether gradients flow into this tensor. */
  requiresGrad = false;
  /** Set by autograd: the op that produced it (a GradNode; undefined for leaves). */
  gradFn: unknown;
  /** True once disposed; any later use is an error. */
  disposed = false;
  /** Kept tensors survive the end of the `scope` that created them (parameters, saved activations). */
  kept = false;
  /** A human name for messages (parameter names such as `backbone.layers.3.mixer.A_log`). */
  name: string | undefined;

  constructor(backend: Backend, storage: unknown, shape: readonly number[], dtype: DType, offset = 0, ld?: number, base?: Tensor) {
    this.backend = backend;
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.offset = offset;
    this.ld = ld ?? this.cols;
    this.base = base;
  }

  get rank(): number { return this.shape.length; }
  /** Last dimension (1 for a scalar). */
  get cols(): number { return this.shape.length === 0 ? 1 : this.shape[this.shape.length - 1]!; }
  /** Product of all dimensions but the last. */
  get rows(): number { return this.shape.length <= 1 ? 1 : numel(this.shape.slice(0, -1)); }
  get size(): number { return numel(this.shape); }
  get isContiguous(): boolean { return this.offset === 0 && (this.ld === this.cols || this.rows === 1); }

  dim(i: number): number {
    const d = this.shape[i < 0 ? this.shape.length + i : i];
    if (d === undefined) fail('BAD_ARGUMENT', `dim(${i}) of a tensor of shape ${fmtShape(this.shape)}`);
    return d;
  }

  /** A view onto columns [start, start + len) of the last dimension. No copy. */
  narrow(start: number, len: number): Tensor {
    this.assertLive();
    if (start < 0 || len < 0 || start + len > this.cols) {
      fail('BAD_ARGUMENT', `narrow(${start}, ${len}) is outside the last dimension of ${fmtShape(this.shape)}`);
    }
    const shape = [...this.shape.slice(0, -1), len];
    // Recorded for autograd when this tensor requires a gradient: the view's gradient lands in its window.
    return recordNarrow(this, new Tensor(this.backend, this.storage, shape, this.dtype, this.offset + start, this.ld, this.base ?? this), start);
  }

  /**
   * The same elements with another shape. A view when the layout allows: any reshape of a contiguous
   * tensor, or a reshape of the leading dimensions that keeps the last one.
   */
  reshape(shape: readonly number[]): Tensor {
    this.assertLive();
    const inferred = inferShape(shape, this.size, this.shape);
    if (this.isContiguous) {
      return recordReshape(this, new Tensor(this.backend, this.storage, inferred, this.dtype, this.offset, undefined, this.base ?? this));
    }
    if (inferred[inferred.length - 1] === this.cols) {
      return recordReshape(this, new Tensor(this.backend, this.storage, inferred, this.dtype, this.offset, this.ld, this.base ?? this));
    }
    return fail('BAD_ARGUMENT', `reshape ${fmtShape(this.shape)} -> ${fmtShape(inferred)} needs a contiguous tensor; copy it first`);
  }

  /** All elements as a new contiguous f32 (or i32) array, converted from 16-bit storage. */
  async read(): Promise<Float32Array | Int32Array> {
    this.assertLive();
    return this.backend.read(this);
  }

  /** Like `read`, for float tensors; throws on i32. */
  async readFloat(): Promise<Float32Array> {
    const a = await this.read();
    if (!(a instanceof Float32Array)) fail('DTYPE_MISMATCH', `readFloat on a ${this.dtype} tensor`);
    return a;
  }

  /** Frees the storage (GPU) now. Views do not own storage; disposing one is a no-op. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (!this.base) this.backend.free(this);
  }

  /** Marks this tensor to survive the scope it was made in. Returns it. */
  keep(): this {
    this.kept = true;
    return this;
  }

  assertLive(): void {
    if (this.disposed || this.base?.disposed) fail('BAD_ARGUMENT', `use of a disposed tensor${this.name ? ` (${this.name})` : ''} of shape ${fmtShape(this.shape)}`);
  }

  toString(): string {
    return `Tensor${fmtShape(this.shape)} ${this.dtype} on ${this.backend.name}${this.name ? ` "${this.name}"` : ''}`;
  }
}

/** Resolves one `-1` in a shape; checks the element count. */
export function inferShape(shape: readonly number[], size: number, from: readonly number[]): number[] {
  const out = [...shape];
  const hole = out.indexOf(-1);
  if (hole >= 0) {
    const rest = numel(out.filter((_, i) => i !== hole));
    out[hole] = rest === 0 ? 0 : size / rest;
  }
  if (numel(out) !== size || out.some((d) => !Number.isInteger(d) || d < 0)) {
    fail('SHAPE_MISMATCH', `cannot reshape ${fmtShape(from)} (${size} elements) to ${fmtShape(shape)}`);
  }
  return out;
}

export function assertSameShape(op: string, a: Tensor, b: Tensor): void {
  if (!sameShape(a.shape, b.shape)) {
    fail('SHAPE_MISMATCH', `${op}: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} differ`, { op, a: a.shape, b: b.shape });
  }
}
