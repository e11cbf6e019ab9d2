import { fail, fmtShape } from '../errors.js';
import type { DType } from './dtype.js';
import { isGradEnabled } from './grad-mode.js';
import { numel, sameShape } from './shape.js';

/**
 * What a Tensor needs from the backend that owns its storage. The backend contract
 * (`backend/contract/memory.ts`) extends it; code that holds a tensor and wants its kernels gets the
 * whole `Backend` with `backendOf(t)` (backend/backend.ts). Declared here so that the tensor layer
 * imports nothing above it.
 */
export interface TensorOwner {
  /** For messages: 'cpu', 'webgpu'. */
  readonly name: string;
  /** All elements, contiguous; floats as f32 whatever the storage. */
  read(t: Tensor): Promise<Float32Array | Int32Array>;
  /** Releases the storage of an owning tensor. */
  free(t: Tensor): void;
}

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
  readonly backend: TensorOwner;
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
  /** Set by autograd: the op that produced it (undefined for leaves). */
  gradFn: GradNode | undefined;
  /** True once disposed; any later use is an error. */
  disposed = false;
  /** Kept tensors survive the end of the `scope` that created them (parameters, saved activations). */
  kept = false;
  /** A human name for messages (parameter names such as `backbone.layers.3.mixer.A_log`). */
  name: string | undefined;

  constructor(
    backend: TensorOwner,
    storage: unknown,
    shape: readonly number[],
    dtype: DType,
    offset = 0,
    ld?: number,
    base?: Tensor,
  ) {
    this.backend = backend;
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.offset = offset;
    this.ld = ld ?? this.cols;
    this.base = base;
  }

  get rank(): number {
    return this.shape.length;
  }
  /** Last dimension (1 for a scalar). */
  get cols(): number {
    return this.shape.length === 0 ? 1 : this.shape[this.shape.length - 1];
  }
  /** Product of all dimensions but the last. */
  get rows(): number {
    // (no slice: kernels ask for it on every call of the recurrent step)
    const s = this.shape;
    let n = 1;
    for (let i = 0; i < s.length - 1; i++) n *= s[i];
    return n;
  }
  get size(): number {
    return numel(this.shape);
  }
  get isContiguous(): boolean {
    return this.offset === 0 && (this.ld === this.cols || this.rows === 1);
  }

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
    return recordNarrow(
      this,
      new Tensor(this.backend, this.storage, shape, this.dtype, this.offset + start, this.ld, this.base ?? this),
      start,
    );
  }

  /**
   * The same elements with another shape. A view when the layout allows: any reshape of a contiguous
   * tensor, or a reshape of the leading dimensions that keeps the last one.
   */
  reshape(shape: readonly number[]): Tensor {
    this.assertLive();
    const inferred = inferShape(shape, this.size, this.shape);
    if (this.isContiguous) {
      return recordReshape(
        this,
        new Tensor(this.backend, this.storage, inferred, this.dtype, this.offset, undefined, this.base ?? this),
      );
    }
    if (inferred[inferred.length - 1] === this.cols) {
      return recordReshape(
        this,
        new Tensor(this.backend, this.storage, inferred, this.dtype, this.offset, this.ld, this.base ?? this),
      );
    }
    return fail(
      'BAD_ARGUMENT',
      `reshape ${fmtShape(this.shape)} -> ${fmtShape(inferred)} needs a contiguous tensor; copy it first`,
    );
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
    if (this.disposed || this.base?.disposed)
      fail(
        'BAD_ARGUMENT',
        `use of a disposed tensor${this.name ? ` (${this.name})` : ''} of shape ${fmtShape(this.shape)}`,
      );
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
    fail('SHAPE_MISMATCH', `${op}: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} differ`, {
      op,
      a: a.shape,
      b: b.shape,
    });
  }
}

// ---- the tape ----------------------------------------------------------------------------------------

/**
 * The tape: every recorded op hangs a GradNode on its output (`Tensor.gradFn`), naming the inputs
 * the gradient flows to and a backward closure; following gradFn from the loss through the inputs
 * walks the recording backwards (a DAG rather than a flat list, so parts that do not lead to the
 * loss are skipped). Only ops whose inputs require gradients are recorded, and only in grad mode.
 *
 * It lives with the Tensor, not in autograd/: `narrow` and `reshape` record themselves (below), so
 * the Tensor needs the node type and `record`, and the node holds Tensors. One file keeps that
 * mutual reference from being an import cycle. autograd/ holds the engine that walks the tape
 * (`backward`); the ops (ops/) record their own nodes with `record`.
 */

/**
 * The gradient for one input: a tensor of the input's shape, or, for views (`narrow`), a tensor of
 * the view's shape to be added into columns [start, start + view width) of the input's gradient.
 */
export type InputGrad = Tensor | { readonly window: Tensor; readonly start: number };

/** Given dL/d(output) (contiguous), returns dL/d(input i) for each input with needs[i], else null. */
export type BackwardFn = (g: Tensor, needs: readonly boolean[]) => (InputGrad | null)[];

export class GradNode {
  /** Set to null once the backward has run (the graph is freed as it goes, as in PyTorch). */
  backward: BackwardFn | null;

  constructor(
    /** The op's name, for messages and debugging. */
    readonly op: string,
    /** The op's inputs that gradients flow to; null where an input does not require a gradient. */
    public inputs: readonly (Tensor | null)[],
    /** Tensors the backward closure reads (kept alive by `scope` as long as the graph is). */
    public saved: readonly Tensor[],
    backward: BackwardFn,
  ) {
    this.backward = backward;
  }

  /** Every tensor the node holds: inputs and saved tensors (for `scope`'s reachability). */
  tensors(): Tensor[] {
    const out: Tensor[] = [...this.saved];
    for (const t of this.inputs) if (t) out.push(t);
    return out;
  }

  /** Drops the references to inputs once their gradients are handed on, so the activations can go. */
  release(): void {
    this.inputs = [];
    this.saved = [];
  }

  /** Runs the backward once; a second call is an error naming the op (the graph is gone). */
  run(g: Tensor): (InputGrad | null)[] {
    const fn =
      this.backward ??
      fail(
        'BAD_ARGUMENT',
        `backward through ${this.op} a second time: its graph was freed by the first backward (run the forward again)`,
      );
    const needs = this.inputs.map((t) => t !== null);
    const grads = fn(g, needs);
    this.backward = null;
    this.saved = [];
    return grads;
  }
}

/** Whether an op on these inputs must be recorded: grad mode on and some input requires a gradient. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!isGradEnabled()) return false;
  for (const t of inputs) if (t?.requiresGrad) return true;
  return false;
}

/**
 * Records an op: `output` gets a GradNode over `inputs` (those not requiring a gradient become null)
 * and becomes a tensor that requires a gradient. Call only when `needsGrad(...inputs)`.
 */
export function record(
  op: string,
  output: Tensor,
  inputs: readonly (Tensor | null | undefined)[],
  saved: readonly Tensor[],
  backward: BackwardFn,
): Tensor {
  output.requiresGrad = true;
  output.gradFn = new GradNode(
    op,
    inputs.map((t) => (t?.requiresGrad ? t : null)),
    saved,
    backward,
  );
  return output;
}

/** The node that produced `t`, if it was recorded. */
export function gradNodeOf(t: Tensor): GradNode | undefined {
  return t.gradFn instanceof GradNode ? t.gradFn : undefined;
}

/**
 * Gradients of views. `Tensor.narrow` and `Tensor.reshape` call these, so views made anywhere (the
 * mixers split `xz` into u and z with `narrow`) are part of the recording. A narrow's gradient is
 * added into its window of the parent's gradient (one buffer of the parent's shape, never a padded
 * copy per view); a reshape's gradient is the same numbers in the parent's shape.
 */
function recordNarrow(parent: Tensor, view: Tensor, start: number): Tensor {
  if (!needsGrad(parent)) return view;
  return record('narrow', view, [parent], [], (g) => [{ window: g, start }]);
}

function recordReshape(parent: Tensor, view: Tensor): Tensor {
  if (!needsGrad(parent)) return view;
  const shape = parent.shape;
  return record('reshape', view, [parent], [], (g) => [g.reshape(shape)]);
}
