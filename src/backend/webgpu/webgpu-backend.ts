/// <reference types="@webgpu/types" />
import { fail, fmtShape } from '../../errors.js';
import { dtypeBytes, halfToF32, type DType } from '../../tensor/dtype.js';
import { track } from '../../tensor/scope.js';
import { numel } from '../../tensor/shape.js';
import { Tensor } from '../../tensor/tensor.js';
import type { Backend } from '../backend.js';
import type { FusedLinearArgs, MambaStepArgs, RecordedWork, SampleArgs } from '../contract/decode.js';
import {
  checkArgmax,
  checkConv,
  checkElementwise,
  checkEmbedding,
  checkGatedRmsnorm,
  checkMatmul,
  checkRmsnorm,
  checkUnaryMul,
  checkScan,
  checkSsdScan,
  type BinaryOp,
  type GatedRmsnormOptions,
  type MatmulOptions,
  type SelectiveScanArgs,
  type SsdScanArgs,
  type UnaryOp,
} from '../contract/inference.js';
import { checkCopy } from '../contract/memory.js';
import {
  checkAdamw,
  checkConvBackward,
  checkCrossEntropy,
  checkEmbeddingBackward,
  checkReduceRows,
  checkRmsnormBackward,
  checkScanBackward,
  checkSsdScanBackward,
  checkUnaryBackward,
  type AdamWStepOptions,
  type CausalConv1dBackwardArgs,
  type LossReduction,
  type ReduceOp,
  type SelectiveScanBackwardArgs,
  type SsdScanBackwardArgs,
  type TrainingKernels,
} from '../contract/training.js';
import { checkFloat } from '../contract/checks.js';
import {
  checkAttention,
  checkAttentionBackward,
  checkFftConv,
  checkFftConvBackward,
  checkSsmConvKernel,
  checkSsmConvKernelBackward,
  checkDiagonalSsmScan,
  checkMoeAccumulate,
  checkMoeRoute,
  checkRotary,
  type AttentionArgs,
  type AttentionBackwardArgs,
  type SsmConvKernelArgs,
  type SsmConvKernelBackwardArgs,
  type DiagonalSsmScanArgs,
  type MoeRouteOptions,
  type RotaryOptions,
} from '../contract/mixers.js';
import {
  checkMamba3Scan,
  checkMamba3ScanBackward,
  type Mamba3ScanArgs,
  type Mamba3ScanBackwardArgs,
} from '../contract/mamba3.js';
import type { GpuDevice } from './device.js';
import { Dispatcher } from './dispatcher.js';
import { BufferPool, bucketBytes, MAP_READ, newStorage, USAGE, type GpuStorage } from './gpu-buffers.js';
import { adamwStep } from './kernels/adamw.js';
import { copy, fill } from './kernels/copy.js';
import { crossEntropy, crossEntropyBackward } from './kernels/cross-entropy.js';
import { embeddingBackward } from './kernels/embedding-backward.js';
import { reduceRows } from './kernels/reduce-rows.js';
import { rmsnormBackward } from './kernels/rmsnorm-backward.js';
import { unaryBackward } from './kernels/unary-backward.js';
import { conv1d } from './kernels/conv1d.js';
import { conv1dBackward } from './kernels/conv1d-backward.js';
import { attention, rotary } from './kernels/attention.js';
import { kvAppend } from './kernels/kv-append.js';
import { checkKvAppend, type KvAppendArgs } from '../contract/kv-append.js';
import { attentionBackward } from './kernels/attention-backward.js';
import { argmax, binary, unary } from './kernels/elementwise.js';
import { moeAccumulate, moeRoute } from './kernels/moe.js';
import { moeExperts, stackFits, stackInto } from './kernels/moe-experts.js';
import { checkMoeExperts, checkStackExperts, type MoeExpertsArgs } from '../contract/moe-experts.js';
import * as moeTrain from './kernels/moe-train.js';
import * as MT from '../contract/moe-train.js';
import { embedding } from './kernels/embedding.js';
import { gatedRmsnorm } from './kernels/gated-rmsnorm.js';
import { mambaStep } from './kernels/mamba-step.js';
import { fusedLinear, fusesLinear } from './kernels/fused-linear.js';
import { unaryMul } from './kernels/unary-mul.js';
import { matmul } from './kernels/matmul.js';
import { wholeQ4 } from './kernels/launch.js';
import { rmsnorm } from './kernels/rmsnorm.js';
import { sample } from './kernels/sample.js';
import { selectiveScan } from './kernels/scan.js';
import { selectiveScanBackward } from './kernels/scan-backward.js';
import { ssdScanBackward } from './kernels/ssd-scan-backward.js';
import { fftConv, fftConvBackward } from './kernels/fft-conv.js';
import { diagonalSsmScan, ssmConvKernel, ssmConvKernelBackward } from './kernels/ssm-conv-kernel.js';
import { ssdScan } from './kernels/ssd-scan.js';
import { mamba3Scan } from './kernels/mamba3-scan.js';
import { mamba3Chunked, mamba3TakesChunked } from './kernels/mamba3-chunked.js';
import { mamba3ScanBackward } from './kernels/mamba3-scan-backward.js';
import { mamba3BackwardTakesChunked, mamba3ChunkedBackward } from './kernels/mamba3-chunked-backward.js';
import type { KernelHost, KernelOptions } from './kernel-host.js';
import { dequantizeQ4Row, q4Layout, q4View } from '../cpu/reference/q4.js';
import { quantizeQ4Fast } from '../cpu/reference/quantize-fast.js';

/** The backend's options: the launchers' (`KernelOptions`) and those of memory and batching. */
export interface WebGpuBackendOptions extends Partial<KernelOptions> {
  /**
   * Idle bytes the buffer pool keeps for reuse before destroying buffers (default 1 GiB), or more
   * while the program has already needed more at once (a training loop reuses its step's buffers;
   * `releaseIdleMemory()` gives them back).
   */
  maxIdleBytes?: number;
  /** Dispatches recorded before a submit is forced (default 2000). */
  maxBatch?: number;
}

/** Allocations at least this large are checked for out-of-memory (an error scope each). */
const OOM_CHECK_BYTES = 32 << 20;
/** Uploads up to this size go through a pooled buffer and queue.writeBuffer. */
const SMALL_UPLOAD = 1 << 20;

/**
 * The WebGPU backend: tensors live in GPU buffers, kernels are WGSL compute shaders (kernels/*.wgsl,
 * each with a small launcher, which sees this backend as a `KernelHost` and binds buffers and
 * parameters by name: bindings.ts), tested against the CPU reference. Dispatches are recorded into one
 * pending command encoder and submitted lazily (see dispatcher.ts), so a model step is one submit.
 * `read` is the only way data comes back; it submits, maps a staging buffer and converts.
 */
export class WebGpuBackend implements Backend, KernelHost, TrainingKernels {
  readonly name = 'webgpu';
  readonly d: Dispatcher;
  readonly device: GPUDevice;
  /** Bound where a kernel's optional read-only input is absent. */
  readonly dummyR: GpuStorage;
  /** Bound where a kernel's optional output is absent (two: one buffer may be writable once per dispatch). */
  readonly dummyW: GpuStorage;
  readonly dummyW2: GpuStorage;
  readonly options: Required<WebGpuBackendOptions>;
  private readonly pool: BufferPool;
  private readonly staging = new Map<number, GPUBuffer[]>();
  private disposed = false;

  constructor(
    readonly g: GpuDevice,
    o: WebGpuBackendOptions = {},
  ) {
    this.device = g.device;
    this.options = {
      maxIdleBytes: o.maxIdleBytes ?? 1 << 30,
      maxBatch: o.maxBatch ?? 2000,
      scanChunk: o.scanChunk ?? 0,
      scanThreads: o.scanThreads ?? 0,
      scanWorkgroup: o.scanWorkgroup ?? 0,
      matvecRows: o.matvecRows ?? 0,
      matvecUnroll: o.matvecUnroll ?? 4,
      matmulTile: o.matmulTile ?? 0,
      matmulRegisters: o.matmulRegisters ?? true,
      ssdPath: o.ssdPath ?? 'auto',
      ssdChunk: o.ssdChunk ?? 0,
      fuseNorm: o.fuseNorm ?? true,
    };
    const { matvecRows: R, matvecUnroll: U } = this.options;
    if (![0, 1, 2, 4, 8].includes(R)) fail('BAD_ARGUMENT', `matvecRows must be 0 (by shape), 1, 2, 4 or 8, got ${R}`);
    if (U !== 1 && U !== 4) fail('BAD_ARGUMENT', `matvecUnroll must be 1 or 4, got ${String(U)}`);
    this.d = new Dispatcher(g, this.options.maxBatch);
    this.pool = new BufferPool(this.options.maxIdleBytes);
    this.dummyR = this.createStorage(256, 'dummy (read)', false);
    this.dummyW = this.createStorage(256, 'dummy (write)', false);
    this.dummyW2 = this.createStorage(256, 'dummy (write 2)', false);
  }

  /** A short description of the adapter and the limits in use, for logs and benchmark records. */
  describe(): Record<string, unknown> {
    return { adapter: this.g.adapterInfo, limits: this.g.limits, features: [...this.g.features].sort() };
  }

  // ---- memory ------------------------------------------------------------------------------------

  private createStorage(bytes: number, label: string, pooled: boolean, mapped = false): GpuStorage {
    const L = this.g.limits;
    const max = Math.min(L.maxBufferSize, L.maxStorageBufferBindingSize);
    if (bytes > max) {
      fail(
        'DEVICE',
        `WebGPU: ${label} needs a buffer of ${mb(bytes)}, but this device binds at most ${mb(max)} (maxStorageBufferBindingSize ${mb(L.maxStorageBufferBindingSize)}, maxBufferSize ${mb(L.maxBufferSize)}); use 16-bit weights or a smaller model`,
        { bytes, max },
      );
    }
    const check = bytes >= OOM_CHECK_BYTES;
    if (check) this.device.pushErrorScope('out-of-memory');
    let buffer: GPUBuffer;
    try {
      buffer = this.device.createBuffer({
        size: bytes,
        usage: USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST,
        mappedAtCreation: mapped,
        label,
      });
    } catch (e) {
      // mappedAtCreation throws (RangeError) when the host-visible mapping cannot be made
      if (check) void this.device.popErrorScope();
      return fail('DEVICE', `WebGPU: out of memory allocating ${mb(bytes)} for ${label}: ${(e as Error).message}`, {
        bytes,
      });
    }
    if (check) {
      void this.device.popErrorScope().then((e) => {
        if (e) this.g.error ??= `out of GPU memory allocating ${mb(bytes)} for ${label} (${e.message})`;
      });
    }
    const st = newStorage(buffer, bytes, pooled);
    if (pooled) this.pool.created(st);
    return st;
  }

  /**
   * Destroys every idle pooled buffer and forgets the peak demand the pool has been keeping memory
   * for (see `BufferPool`): after a large job, before a smaller one, to give the GPU memory back.
   */
  releaseIdleMemory(): void {
    this.checkAlive();
    for (const x of this.pool.releaseIdle()) this.d.destroyLater(x);
  }

  private checkAlive(): void {
    if (this.disposed) fail('DEVICE', 'the WebGPU backend was disposed');
    if (this.g.lost) fail('DEVICE', this.g.lost);
  }

  /** Throws the first device error reported since the last check (after a read or sync). */
  private checkErrors(): void {
    this.checkAlive();
    const e = this.g.error;
    if (e) {
      this.g.error = undefined;
      fail('DEVICE', `WebGPU error: ${e}`);
    }
  }

  alloc(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    this.checkAlive();
    if (dtype === 'q8') noQ8();
    const q4 = dtype === 'q4' ? q4Shape(shape) : undefined;
    const bytes = bucketBytes(round16(q4 ? q4.bytes : Math.max(numel(shape), 1) * dtypeBytes(dtype)));
    const s = this.pool.take(bytes) ?? this.createStorage(bytes, `tensor ${fmtShape(shape)} ${dtype}`, true);
    return track(new Tensor(this, s, shape, dtype, 0, q4?.ld));
  }

  zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const t = this.alloc(shape, dtype);
    this.fill(t, 0);
    return t;
  }

  upload(data: Float32Array | Uint16Array | Int32Array, shape: readonly number[], dtype?: DType): Tensor {
    this.checkAlive();
    const dt =
      dtype ??
      (data instanceof Float32Array
        ? 'f32'
        : data instanceof Int32Array
          ? 'i32'
          : fail('BAD_ARGUMENT', 'upload: a Uint16Array needs dtype f16 or bf16'));
    if (dt === 'q8') noQ8();
    const n = numel(shape);
    if (data.length !== n)
      fail('SHAPE_MISMATCH', `upload: ${data.length} elements for shape ${fmtShape(shape)}, expected ${n}`);
    const want = dt === 'f32' || dt === 'q4' ? Float32Array : dt === 'i32' ? Int32Array : Uint16Array;
    if (!(data instanceof want))
      fail(
        'DTYPE_MISMATCH',
        `upload: a ${data.constructor.name} for dtype ${dt}` +
          (dt === 'q4' ? ' (q4 takes f32 data and quantises it)' : ''),
      );
    // q4: quantised here, on the CPU (backend/cpu/reference/q4.ts), and uploaded as bytes
    const q4 = dt === 'q4' ? q4Shape(shape) : undefined;
    let src: ArrayBufferView = data;
    if (q4) {
      src = new Uint8Array(q4.bytes);
      quantizeQ4Fast(data as Float32Array, q4.rows, q4.cols, src as Uint8Array);
    }
    const bytes = round16(q4 ? q4.bytes : Math.max(n, 1) * dtypeBytes(dt));
    let s: GpuStorage;
    if (bytes <= SMALL_UPLOAD) {
      const size = bucketBytes(bytes);
      s = this.pool.take(size) ?? this.createStorage(size, `tensor ${fmtShape(shape)} ${dt}`, true);
      // A queue write runs before commands still being recorded: submit those first if they use s.
      if (this.d.usedByPending(s)) this.d.flush();
      const len = (src.byteLength + 3) & ~3;
      if (len === src.byteLength)
        this.device.queue.writeBuffer(s.buffer, 0, src.buffer as ArrayBuffer, src.byteOffset, len);
      else {
        const pad = new Uint8Array(len);
        pad.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
        this.device.queue.writeBuffer(s.buffer, 0, pad);
      }
    } else {
      s = this.createStorage(bytes, `tensor ${fmtShape(shape)} ${dt}`, false, true);
      new Uint8Array(s.buffer.getMappedRange()).set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
      s.buffer.unmap();
    }
    return track(new Tensor(this, s, shape, dt, 0, q4?.ld));
  }

  /** The GPU storage of a tensor of this backend. */
  buf(t: Tensor): GpuStorage {
    if (t.backend !== this) fail('BACKEND_MISMATCH', `a ${t.backend.name} tensor given to the webgpu backend`);
    t.assertLive();
    return t.storage as GpuStorage;
  }

  /** A scratch buffer of at least `bytes` from the pool; give it back with `release`. */
  scratch(bytes: number): GpuStorage {
    const size = bucketBytes(round16(bytes));
    return this.pool.take(size) ?? this.createStorage(size, 'scratch', true);
  }

  release(s: GpuStorage): void {
    // scratch released while recording is bound by the recording: it keeps it until disposed
    const rec = this.d.recording;
    if (rec) {
      rec.owned.push(s);
      return;
    }
    for (const x of this.pool.give(s)) this.d.destroyLater(x);
  }

  /** See `Backend.record`: the dispatches of `fn`, replayable with no host work. */
  record(fn: () => void): RecordedWork {
    this.checkAlive();
    return this.d.record(fn, (s) => this.release(s));
  }

  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    // Everything before the first await runs now: the copy is recorded and submitted at call time,
    // so a caller may record more work before awaiting (pipelining).
    this.checkAlive();
    const s = this.buf(t);
    const es = dtypeBytes(t.dtype);
    const rows = t.rows,
      cols = t.cols;
    const first = t.offset;
    const end = t.size === 0 ? first : t.offset + (rows - 1) * t.ld + cols;
    const b0 = Math.floor((first * es) / 4) * 4;
    // q4: the whole storage (quants, then scales)
    const endBytes = t.dtype === 'q4' ? q4Layout(rows, cols).bytes : end * es;
    const b1 = Math.max(b0 + 4, Math.ceil(endBytes / 4) * 4);
    const size = b1 - b0;
    const st = this.takeStaging(size);
    this.d.copy(s.buffer, b0, st.buffer, 0, size);
    this.d.flush();
    try {
      await st.buffer.mapAsync(MAP_READ, 0, size);
    } catch (e) {
      this.checkErrors();
      fail('DEVICE', `WebGPU: reading ${t.toString()} back failed: ${(e as Error).message}`);
    }
    const raw = st.buffer.getMappedRange(0, size).slice(0);
    st.buffer.unmap();
    this.giveStaging(st);
    this.checkErrors();
    if (t.dtype === 'q4') {
      const v = q4View(new Uint8Array(raw), rows, cols);
      const out = new Float32Array(t.size);
      for (let r = 0; r < rows; r++) dequantizeQ4Row(v, r, out.subarray(r * cols, (r + 1) * cols));
      return out;
    }
    const base = first - b0 / es; // element index of `first` within raw
    if (t.dtype === 'i32' || t.dtype === 'f32') {
      const src = t.dtype === 'i32' ? new Int32Array(raw) : new Float32Array(raw);
      const out = t.dtype === 'i32' ? new Int32Array(t.size) : new Float32Array(t.size);
      if (t.ld === cols || rows === 1) out.set(src.subarray(base, base + t.size));
      else for (let r = 0; r < rows; r++) out.set(src.subarray(base + r * t.ld, base + r * t.ld + cols), r * cols);
      return out;
    }
    const src = new Uint16Array(raw);
    const out = new Float32Array(t.size);
    for (let r = 0; r < rows; r++)
      halfToF32(
        src.subarray(base + r * t.ld, base + r * t.ld + cols),
        t.dtype as 'f16' | 'bf16',
        out.subarray(r * cols, (r + 1) * cols),
      );
    return out;
  }

  private takeStaging(bytes: number): { buffer: GPUBuffer; size: number } {
    const size = bucketBytes(bytes);
    const b =
      this.staging.get(size)?.pop() ??
      this.device.createBuffer({ size, usage: USAGE.MAP_READ | USAGE.COPY_DST, label: 'read-back' });
    return { buffer: b, size };
  }

  private giveStaging(s: { buffer: GPUBuffer; size: number }): void {
    if (this.disposed) return;
    let l = this.staging.get(s.size);
    if (!l) this.staging.set(s.size, (l = []));
    if (l.length < 8) l.push(s.buffer);
    else s.buffer.destroy();
  }

  free(t: Tensor): void {
    if (this.disposed) return;
    const s = t.storage as GpuStorage;
    if (s.pooled) this.release(s);
    else this.d.destroyLater(s);
  }

  async sync(): Promise<void> {
    this.checkAlive();
    this.d.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.checkErrors();
  }

  /** Submits recorded work without waiting. */
  flush(): void {
    this.d.flush();
  }

  /** Destroys the device (every tensor becomes unusable). Node needs this to exit promptly. */
  dispose(): void {
    if (this.disposed) return;
    try {
      this.d.flush();
    } catch {
      /* a lost device has nothing to flush */
    }
    this.disposed = true;
    this.g.lost ??= 'the WebGPU backend was disposed';
    this.device.destroy();
  }

  /** Records the GPU time of each dispatch until `stopProfile` (needs timestamp queries). */
  startProfile(): void {
    this.d.startProfile();
  }
  /** [kernel, ns] per dispatch since `startProfile`. */
  stopProfile(): Promise<[string, number][]> {
    return this.d.stopProfile();
  }

  // ---- kernels -----------------------------------------------------------------------------------

  copy(dst: Tensor, src: Tensor): void {
    checkCopy(dst, src);
    if (src.dtype === 'q4' || dst.dtype === 'q4')
      fail('UNSUPPORTED', `copy: ${src.toString()} -> ${dst.toString()}; q4 tensors are not copied on WebGPU`);
    copy(this, dst, src);
  }

  fill(t: Tensor, value: number): void {
    if (t.dtype === 'q4') fail('DTYPE_MISMATCH', `fill: ${t.toString()}, expected f32, f16, bf16 or i32`);
    fill(this, t, value);
  }

  matmul(out: Tensor, a: Tensor, b: Tensor, o: MatmulOptions = {}): void {
    const [m, q, p] = checkMatmul(out, a, b, o, ['q4']);
    if (b.dtype === 'q4') wholeQ4(b);
    matmul(this, out, a, b, o, m, q, p);
  }

  embedding(out: Tensor, ids: Tensor, table: Tensor): void {
    const { m, d } = checkEmbedding(out, ids, table, ['q4']);
    if (table.dtype === 'q4') wholeQ4(table);
    embedding(this, out, ids, table, m, d);
  }

  addRmsnorm(out: Tensor, residual: Tensor, x: Tensor | null, weight: Tensor, eps: number, xScale = 1): void {
    const { m, d } = checkRmsnorm(out, residual, x, weight);
    rmsnorm(this, out, residual, x, weight, eps, m, d, xScale);
  }

  causalConv1d(out: Tensor, x: Tensor, weight: Tensor, bias: Tensor | null, state: Tensor | null, silu: boolean): void {
    const dims = checkConv(out, x, weight, bias, state);
    conv1d(this, out, x, weight, bias, state, silu, dims);
  }

  selectiveScan(s: SelectiveScanArgs): void {
    const dims = checkScan(s);
    selectiveScan(this, s, dims);
  }

  unary(op: UnaryOp, out: Tensor, x: Tensor): void {
    checkElementwise(op, out, x);
    unary(this, op, out, x);
  }

  binary(op: BinaryOp, out: Tensor, a: Tensor, b: Tensor): void {
    checkElementwise(op, out, a, b);
    binary(this, op, out, a, b);
  }

  unaryMul(op: UnaryOp, out: Tensor, x: Tensor, y: Tensor): void {
    checkUnaryMul(op, out, x, y);
    unaryMul(this, op, out, x, y);
  }

  argmax(out: Tensor, x: Tensor): void {
    checkArgmax(out, x);
    argmax(this, out, x);
  }

  mamba3Scan(a: Mamba3ScanArgs): void {
    const { b, l } = checkMamba3Scan(a);
    if (mamba3TakesChunked(this, a.dims, b, l)) mamba3Chunked(this, a, b, l);
    else mamba3Scan(this, a, b, l);
  }

  mamba3ScanBackward(a: Mamba3ScanBackwardArgs): void {
    const { b, l } = checkMamba3ScanBackward(a);
    if (mamba3BackwardTakesChunked(this, a.dims, b, l, !!a.normWeight)) mamba3ChunkedBackward(this, a, b, l);
    else mamba3ScanBackward(this, a, b, l);
  }

  ssdScan(s: SsdScanArgs): void {
    const dims = checkSsdScan(s);
    ssdScan(this, s, dims);
  }

  gatedRmsnorm(out: Tensor, x: Tensor, z: Tensor | null, weight: Tensor, o: GatedRmsnormOptions): void {
    const { m, e } = checkGatedRmsnorm(out, x, z, weight, o);
    gatedRmsnorm(this, out, x, z, weight, o, m, e);
  }

  sample(a: SampleArgs): void {
    sample(this, a);
  }

  mambaStep(a: MambaStepArgs): boolean {
    return mambaStep(this, a);
  }

  fusesLinear(rows: number, weights: readonly Tensor[]): boolean {
    return this.options.fuseNorm && fusesLinear(rows, weights);
  }

  fusedLinear(a: FusedLinearArgs): void {
    fusedLinear(this, a);
  }

  // ---- training (docs/autograd.md; in f32, where the CPU reference accumulates in f64) -----------

  reduceRows(op: ReduceOp, out: Tensor, x: Tensor, accumulate = false): void {
    const { m, p } = checkReduceRows(out, x);
    reduceRows(this, op, out, x, m, p, accumulate);
  }

  unaryBackward(op: UnaryOp, dx: Tensor, g: Tensor, x: Tensor, y: Tensor): void {
    checkUnaryBackward(op, dx, g, x, y);
    unaryBackward(this, op, dx, g, x, y);
  }

  embeddingBackward(dTable: Tensor, ids: Tensor, g: Tensor): void {
    const { m, d } = checkEmbeddingBackward(dTable, ids, g);
    embeddingBackward(this, dTable, ids, g, m, d);
  }

  rmsnormBackward(dx: Tensor, dWeight: Tensor, g: Tensor, x: Tensor, weight: Tensor, eps: number): void {
    const { m, d } = checkRmsnormBackward(dx, dWeight, g, x, weight);
    rmsnormBackward(this, dx, dWeight, g, x, weight, eps, m, d);
  }

  causalConv1dBackward(a: CausalConv1dBackwardArgs): void {
    const dims = checkConvBackward(a);
    conv1dBackward(this, a, dims);
  }

  selectiveScanBackward(s: SelectiveScanBackwardArgs): void {
    const dims = checkScanBackward(s);
    selectiveScanBackward(this, s, dims);
  }

  ssdScanBackward(s: SsdScanBackwardArgs): void {
    const dims = checkSsdScanBackward(s);
    ssdScanBackward(this, s, dims);
  }

  /** A target id >= V gives a NaN loss here (the CPU throws TOKEN_OUT_OF_RANGE): checking needs a read back. */
  crossEntropy(out: Tensor, logits: Tensor, targets: Tensor, reduction: LossReduction): void {
    const { m, V } = checkCrossEntropy('crossEntropy', out, logits, targets, 'scalar');
    crossEntropy(this, out, logits, targets, m, V, reduction);
  }

  crossEntropyBackward(dLogits: Tensor, logits: Tensor, targets: Tensor, g: Tensor, reduction: LossReduction): void {
    const { m, V } = checkCrossEntropy('crossEntropyBackward', dLogits, logits, targets, 'logits');
    checkFloat('crossEntropyBackward', 'g', g);
    if (g.size !== 1)
      fail('SHAPE_MISMATCH', `crossEntropyBackward: g has shape ${fmtShape(g.shape)}, expected one element`);
    crossEntropyBackward(this, dLogits, logits, targets, g, m, V, reduction);
  }

  adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWStepOptions): void {
    checkAdamw(param, grad, m, v, o);
    adamwStep(this, param, grad, m, v, o);
  }

  attention(a: AttentionArgs): void {
    attention(this, a, checkAttention('attention', a));
  }

  kvAppend(a: KvAppendArgs): void {
    kvAppend(this, a, checkKvAppend(a));
  }

  attentionBackward(a: AttentionBackwardArgs): void {
    attentionBackward(this, a, checkAttentionBackward(a));
  }

  fftConv(y: Tensor, u: Tensor, K: Tensor): void {
    const { b, l, e } = checkFftConv('fftConv', y, u, K);
    fftConv(this, y, u, K, b, l, e);
  }

  fftConvBackward(du: Tensor, dK: Tensor, g: Tensor, u: Tensor, K: Tensor): void {
    const { b, l, e, lk } = checkFftConvBackward(du, dK, g, u, K);
    fftConvBackward(this, du, dK, g, u, K, b, l, e, lk);
  }

  ssmConvKernel(a: SsmConvKernelArgs): void {
    const { L, e, N } = checkSsmConvKernel(a);
    ssmConvKernel(this, a, L, e, N);
  }

  ssmConvKernelBackward(a: SsmConvKernelBackwardArgs): void {
    const { L, e, N } = checkSsmConvKernelBackward(a);
    ssmConvKernelBackward(this, a, L, e, N);
  }

  diagonalSsmScan(a: DiagonalSsmScanArgs): void {
    const { b, l, e, N } = checkDiagonalSsmScan(a);
    diagonalSsmScan(this, a, b, l, e, N);
  }

  rotary(out: Tensor, x: Tensor, o: RotaryOptions): void {
    rotary(this, out, x, o, checkRotary(out, x, o));
  }

  moeRoute(weights: Tensor, logits: Tensor, bias: Tensor | null, o: MoeRouteOptions): void {
    const { m, E } = checkMoeRoute(weights, logits, bias, o);
    moeRoute(this, weights, logits, bias, o, m, E);
  }

  moeAccumulate(out: Tensor, y: Tensor, weights: Tensor, expert: number): void {
    const { m, d } = checkMoeAccumulate(out, y, weights, expert);
    moeAccumulate(this, out, y, weights, expert, m, d);
  }

  moeExperts(a: MoeExpertsArgs): void {
    const { m, d, E, I, U } = checkMoeExperts(a);
    moeExperts(this, a, m, d, E, I, U);
  }

  moePairs(weights: Tensor, K: number): MT.MoePairs {
    checkFloat('moePairs', 'weights', weights);
    const [m, E] = [weights.rows, weights.cols];
    const pr = { m, E, K, ids: this.alloc([m * K], 'i32'), wts: this.alloc([m * K]) };
    const pairs = { ...pr, count: this.alloc([E], 'i32'), list: this.alloc([E * m], 'i32') };
    moeTrain.moePairs(this, weights, pairs);
    return pairs;
  }

  moeExpertProduct(a: MT.MoeExpertProductArgs): void {
    const { P, Q } = MT.checkMoeExpertProduct('moeExpertProduct', a.a, a.w, a.pairs, a.gather, a.out);
    moeTrain.moeExpertProduct(this, a, P, Q);
  }

  moeExpertProductBackward(a: MT.MoeExpertProductBackwardArgs): void {
    const { P, Q } = MT.checkMoeExpertProduct('moeExpertProductBackward', a.a, a.w, a.pairs, a.gather, a.g);
    const perPair = a.dA && a.gather ? this.alloc([a.pairs.m * a.pairs.K, Q]) : null;
    moeTrain.moeExpertProductBackward(this, a, P, Q, perPair);
    perPair?.dispose();
  }

  moeCombine(out: Tensor, y: Tensor, pairs: MT.MoePairs): void {
    const d = MT.checkMoeCombine('moeCombine', y, pairs, out);
    const packed = y.offset === 0 && y.ld === d ? y : this.contiguousCopy(y);
    moeTrain.moeCombine(this, out, packed, pairs, d);
    if (packed !== y) packed.dispose();
  }

  moeCombineBackward(dY: Tensor | null, dWeights: Tensor | null, g: Tensor, y: Tensor, pairs: MT.MoePairs): void {
    const d = MT.checkMoeCombine('moeCombineBackward', y, pairs, dY, dWeights, g);
    moeTrain.moeCombineBackward(this, dY, dWeights, g, y, pairs, d);
  }

  /** A packed copy of t (offset 0, ld = cols). */
  private contiguousCopy(t: Tensor): Tensor {
    const c = this.alloc(t.shape);
    copy(this, c, t);
    return c;
  }

  stackExperts(ts: readonly Tensor[]): Tensor | null {
    const [t0] = checkStackExperts(ts);
    if (!stackFits(this, ts.length * t0.rows, t0.cols, t0.dtype)) return null;
    const dst = this.alloc([ts.length * t0.rows, t0.cols], t0.dtype);
    if (stackInto(this, dst, ts)) return dst;
    dst.dispose();
    return null;
  }
}

/** A q4 tensor's layout (rows x cols: its last dimension is the row). */
function q4Shape(shape: readonly number[]) {
  const cols = shape.length === 0 ? 1 : shape[shape.length - 1];
  return q4Layout(cols === 0 ? 0 : numel(shape) / cols, cols);
}

/** The kernels read f32, 16-bit floats and q4: q8 weights are refused at their first upload (model build). */
function noQ8(): never {
  return fail(
    'UNSUPPORTED',
    'q8 weights are not supported on WebGPU; use f32, f16 or bf16 ' +
      "(--dtype f32, f16, bf16, q4, or auto to keep a 16-bit checkpoint's dtype)",
    { dtype: 'q8' },
  );
}

function round16(n: number): number {
  return Math.ceil(n / 16) * 16;
}

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
