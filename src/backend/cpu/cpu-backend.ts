// Layer 4 of the CPU backend: the assembly. CpuBackend (this file) and its glue (ts-parallel.ts) put the
// reference kernels (reference/), the runtime (runtime/: arenas, thread pool) and the WebAssembly kernels
// (wasm/) together behind the Backend contract. It may import all three; none of them imports it.

import { fail } from '../../errors.js';
import { dtypeBytes, f32ToBf16Bits, f32ToF16Bits, halfToF32, isQuantized, type DType } from '../../tensor/dtype.js';
import { numel } from '../../tensor/shape.js';
import { Tensor } from '../../tensor/tensor.js';
import { track } from '../../tensor/scope.js';
import { Sampler } from '../sampling.js';
import type { Backend } from '../backend.js';
import { checkSample, type SampleArgs } from '../contract/decode.js';
import {
  checkArgmax,
  checkConv,
  checkElementwise,
  checkEmbedding,
  checkGatedRmsnorm,
  checkMatmul,
  checkRmsnorm,
  checkScan,
  checkSsdScan,
  type BinaryOp,
  type GatedRmsnormOptions,
  type MatmulOptions,
  type SelectiveScanArgs,
  type SsdScanArgs,
  type UnaryOp,
} from '../contract/inference.js';
import {
  checkAttention,
  checkAttentionBackward,
  checkDiagonalSsmScan,
  checkFftConv,
  checkFftConvBackward,
  checkMoeAccumulate,
  checkMoeRoute,
  checkRotary,
  checkSsmConvKernel,
  checkSsmConvKernelBackward,
  type AttentionArgs,
  type AttentionBackwardArgs,
  type DiagonalSsmScanArgs,
  type MoeRouteOptions,
  type RotaryOptions,
  type SsmConvKernelArgs,
  type SsmConvKernelBackwardArgs,
  type SsmParams,
} from '../contract/mixers.js';
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
} from '../contract/training.js';
import { checkFloat } from '../contract/checks.js';
import { checkCopy, type HostView } from '../contract/memory.js';
import { WasmOps } from './wasm/launch.js';
import { simdLevel, wasmKernelsSupported } from './wasm/module.js';
import { defaultThreadHost } from './wasm/default-thread-host.js';
import { KernelThreadOps, type ThreadOpsSetup } from './wasm/thread-ops.js';
import { ArenaSet, canShareMemory, type Arena, type ArenaOptions } from './runtime/arena.js';
import { attention, type AttentionDims } from './reference/attention.js';
import { attentionBackward } from './reference/attention-backward.js';
import { diagonalSsmScan } from './reference/diagonal-ssm-scan.js';
import { fftConv } from './reference/fft-conv.js';
import { fftConvBackward } from './reference/fft-conv-backward.js';
import { rotary } from './reference/rotary.js';
import { mamba3Scan, type Mamba3Views } from './reference/mamba3-scan.js';
import { mamba3ScanBackward } from './reference/mamba3-scan-backward.js';
import {
  checkMamba3Scan,
  checkMamba3ScanBackward,
  type Mamba3ScanArgs,
  type Mamba3ScanBackwardArgs,
} from '../contract/mamba3.js';
import { ssmConvKernel, type SsmViews } from './reference/ssm-conv-kernel.js';
import { ssmConvKernelBackward } from './reference/ssm-conv-kernel-backward.js';
import { adamwStep } from './reference/adamw.js';
import { causalConv1d } from './reference/conv1d.js';
import { causalConv1dBackward } from './reference/conv1d-backward.js';
import { crossEntropy } from './reference/cross-entropy.js';
import { crossEntropyBackward } from './reference/cross-entropy-backward.js';
import { embeddingBackward } from './reference/embedding-backward.js';
import { reduceRows } from './reference/reduce.js';
import { rmsnormBackward } from './reference/rmsnorm-backward.js';
import { selectiveScanBackward } from './reference/selective-scan-backward.js';
import { ssdScanBackward } from './reference/ssd-scan-backward.js';
import { unaryBackward } from './reference/unary-backward.js';
import { argmax, binary, unary } from './reference/elementwise.js';
import { embedding } from './reference/embedding.js';
import { moeAccumulate, moeRoute } from './reference/moe-route.js';
import { gatedRmsnorm } from './reference/gated-rmsnorm.js';
import { matmulCols, type MatmulGeom } from './reference/matmul.js';
import { ThreadPool, type PoolOptions } from './runtime/pool.js';
import { TsParallel, type CpuParallel } from './ts-parallel.js';
import { dequantizeQ8Row, embeddingQ8, matmulQ8Cols, q8Layout, q8View, type Q8View } from './reference/q8.js';
import { dequantizeQ4Row, embeddingQ4, matmulQ4Cols, q4Layout, q4View, type Q4View } from './reference/q4.js';
import { matmulRepacked } from './reference/matmul-repack.js';
import { quantizeQ4Fast, quantizeQ8Fast } from './reference/quantize-fast.js';
import { addRmsnorm } from './reference/rmsnorm.js';
import { selectiveScan, type ScanViews } from './reference/selective-scan.js';
import { ssdChunkScan, type SsdViews } from './reference/ssd-scan.js';
import type { ThreadHost } from './runtime/thread-host.js';
import type { FView, View } from './reference/view.js';

/** Bytes of source values load-time quantisation copies into WebAssembly memory at a time (CpuBackend.quantizeInto). */
export const QUANTIZE_CHUNK = 32 << 20;

export type CpuStorage = Float32Array | Uint16Array | Int32Array | Int8Array;

export type CpuKernels = 'wasm' | 'ts';

export interface CpuBackendOptions {
  /**
   * 'wasm': WebAssembly SIMD kernels (the default where the engine has SIMD128); 'ts': the plain
   * TypeScript reference kernels. The environment variable MAMBA_TS_CPU_KERNELS=ts|wasm overrides
   * the default (not an explicit option).
   */
  kernels?: CpuKernels | 'auto';
  /** Where tensors live (tests use small arenas to exercise models spanning several memories). */
  arenas?: ArenaOptions;
}

/** True where memory can be shared with workers (Node; cross-origin-isolated pages). */
const canShare = canShareMemory();

/** The block-quantised weight formats this backend holds (matmul's b, embedding's table). */
const QUANTIZED: readonly DType[] = ['q8', 'q4'];

function envKernels(): CpuKernels | undefined {
  const g = globalThis as { process?: { env?: Record<string, string | undefined> } };
  const v = g.process?.env?.MAMBA_TS_CPU_KERNELS;
  if (v === undefined || v === '') return undefined;
  if (v !== 'ts' && v !== 'wasm') fail('BAD_ARGUMENT', `MAMBA_TS_CPU_KERNELS must be "ts" or "wasm", got "${v}"`);
  return v;
}

/**
 * The CPU backend. Its TypeScript kernels (reference/matmul.ts, selective-scan.ts, ...) are the
 * specification every other kernel is tested against; by default it runs the WebAssembly SIMD
 * versions of the hot ones (wasm/), falling back to TypeScript for any dtype or layout
 * they do not take. Tensors live in WebAssembly memories (runtime/arena.ts) so both kinds of kernel, and
 * the worker threads of `useThreads`, work on the same bytes without copies.
 */
export class CpuBackend implements Backend {
  readonly name = 'cpu';
  /** Which kernels run the hot paths. */
  readonly kernels: CpuKernels;
  /** Set by `useThreads` in TypeScript mode; undefined runs everything on the calling thread. */
  parallel: CpuParallel | undefined;
  /** Tensor memory; undefined where WebAssembly is missing (then each tensor has its own buffer). */
  readonly arenas: ArenaSet | undefined;
  private readonly wasm: WasmOps | undefined;
  private readonly memories: (WebAssembly.Memory | undefined)[] = [];
  private pool: ThreadPool | undefined;
  /** Frees the arena block of a tensor nobody disposed, once its storage is garbage. */
  private readonly finalizer = new FinalizationRegistry<{ arena: Arena; off: number }>((h) => h.arena.free(h.off));

  constructor(o: CpuBackendOptions = {}) {
    const hasWasm = typeof WebAssembly !== 'undefined' && typeof WebAssembly.Memory === 'function';
    const want = o.kernels === undefined || o.kernels === 'auto' ? (envKernels() ?? 'wasm') : o.kernels;
    const shared = o.arenas?.shared ?? canShare;
    const wasmOk = hasWasm && wasmKernelsSupported(shared);
    if (want === 'wasm' && o.kernels === 'wasm' && !wasmOk)
      fail(
        'UNSUPPORTED',
        'the WebAssembly SIMD kernels do not run on this engine (WebAssembly SIMD128 missing); use kernels: "ts"',
      );
    this.kernels = want === 'wasm' && wasmOk ? 'wasm' : 'ts';
    if (hasWasm) {
      this.arenas = new ArenaSet({ ...o.arenas, shared });
      if (this.kernels === 'wasm') this.wasm = new WasmOps(this.arenas);
      this.arenas.onNewArena = (a) => {
        this.memories[a.id] = a.memory;
        this.wasm?.attach(a);
        this.pool?.attach(a);
      };
    }
  }

  /** Threads in use (1 without a pool). */
  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  /**
   * Runs the parallel kernels (products, scan, conv) on `n` threads: the caller plus n - 1
   * persistent workers (Node worker_threads, or Web Workers in cross-origin-isolated pages).
   * n = 1 stops the workers. Both kernel kinds use the pool.
   */
  async useThreads(n: number, o: PoolOptions & { host?: ThreadHost } = {}): Promise<void> {
    if (!Number.isInteger(n) || n < 1) fail('BAD_ARGUMENT', `threads must be a positive integer, got ${n}`);
    if (n === this.threads) return;
    this.pool?.close();
    this.pool = undefined;
    this.parallel = undefined;
    if (this.wasm) this.wasm.pool = undefined;
    if (n === 1) return;
    if (!this.arenas) fail('UNSUPPORTED', 'threads need WebAssembly memories, which this engine lacks');
    const host = o.host ?? (await defaultThreadHost());
    // the calling thread runs its chunks over the backend's own lists (arenas opened later appear in them)
    const main = new KernelThreadOps(0, this.wasm?.kernels ?? [], this.memories, false);
    const setup: ThreadOpsSetup = { wasm: this.kernels === 'wasm', simd: simdLevel() };
    this.pool = await ThreadPool.create(n, host, this.arenas, main, setup, o);
    if (this.wasm) this.wasm.pool = this.pool;
    else this.parallel = new TsParallel(this.pool, this.arenas);
  }

  // ---- memory ----------------------------------------------------------------------------------

  /**
   * A new tensor, contents unspecified (the contract's): reused arena memory is not cleared, which
   * matters in training, where a step allocates and overwrites hundreds of MiB of activations and
   * gradients. `zeros` clears.
   */
  alloc(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const n = numel(shape);
    const cols = shape.length === 0 ? 1 : shape[shape.length - 1];
    const rows = cols === 0 ? 0 : n / cols;
    // q8, q4: one block of bytes (quants, then scales) with a padded row length
    const quant = dtype === 'q8' ? q8Layout(rows, cols) : dtype === 'q4' ? q4Layout(rows, cols) : undefined;
    const elems = Math.max(n, 1);
    const bytes = quant ? Math.max(quant.bytes, 1) : elems * dtypeBytes(dtype);
    let buf: ArrayBufferLike,
      off = 0;
    if (this.arenas) {
      const blk = this.arenas.alloc(bytes, false);
      buf = blk.arena.buffer();
      off = blk.off;
      const data = this.makeArray(buf, off, dtype, quant ? bytes : n);
      this.finalizer.register(data, { arena: blk.arena, off }, data);
      return track(new Tensor(this, data, shape, dtype, 0, quant?.ld));
    }
    // No WebAssembly: no threads either, so no shared memory (V8 does not count SharedArrayBuffers as
    // memory pressure: a training loop's garbage tensors would pile up unreclaimed).
    buf = new ArrayBuffer(bytes);
    return track(new Tensor(this, this.makeArray(buf, 0, dtype, quant ? bytes : n), shape, dtype, 0, quant?.ld));
  }

  private makeArray(buf: ArrayBufferLike, off: number, dtype: DType, n: number): CpuStorage {
    switch (dtype) {
      case 'f32':
        return new Float32Array(buf, off, n);
      case 'i32':
        return new Int32Array(buf, off, n);
      case 'q8':
      case 'q4':
        return new Int8Array(buf, off, n);
      default:
        return new Uint16Array(buf, off, n);
    }
  }

  zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const t = this.alloc(shape, dtype); // (through alloc: subclasses choose the storage)
    (t.storage as CpuStorage).fill(0);
    return t;
  }

  /** A new tensor holding `data`; for q8 and q4, f32 data quantised here (reference/q8.ts, q4.ts). */
  upload(data: Float32Array | Uint16Array | Int32Array, shape: readonly number[], dtype?: DType): Tensor {
    const dt =
      dtype ??
      (data instanceof Float32Array
        ? 'f32'
        : data instanceof Int32Array
          ? 'i32'
          : fail('BAD_ARGUMENT', 'upload: a Uint16Array needs dtype f16 or bf16'));
    const n = numel(shape);
    if (data.length !== n)
      fail('SHAPE_MISMATCH', `upload: ${data.length} elements for shape (${shape.join(', ')}), expected ${n}`);
    const want = dt === 'f32' || isQuantized(dt) ? Float32Array : dt === 'i32' ? Int32Array : Uint16Array;
    if (!(data instanceof want))
      fail(
        'DTYPE_MISMATCH',
        `upload: a ${data.constructor.name} for dtype ${dt}` +
          (isQuantized(dt) ? ` (${dt} takes f32 data and quantises it)` : ''),
      );
    const t = this.alloc(shape, dt);
    if (isQuantized(dt)) this.quantizeInto(t, data as Float32Array, 'f32');
    else (t.storage as Float32Array | Uint16Array | Int32Array).set(data);
    return t;
  }

  uploadFromHalf(
    bits: Uint16Array,
    from: 'f16' | 'bf16',
    shape: readonly number[],
    dtype: 'f32' | 'q8' | 'q4',
  ): Tensor {
    const n = numel(shape);
    if (bits.length !== n)
      fail('SHAPE_MISMATCH', `uploadFromHalf: ${bits.length} elements for shape (${shape.join(', ')}), expected ${n}`);
    if (dtype !== 'f32' && !isQuantized(dtype))
      fail('BAD_ARGUMENT', `uploadFromHalf: dtype must be f32, q8 or q4, got ${dtype as string}`);
    const t = this.alloc(shape, dtype);
    if (dtype === 'f32') halfToF32(bits, from, t.storage as Float32Array);
    else this.quantizeInto(t, bits, from);
    return t;
  }

  /**
   * t (q8 / q4) <- the quantised values: the WebAssembly kernel over a copy of them in t's memory
   * (quantize.wat, split over the threads), else, and for values it leaves (inf, NaN, a q4 weight past
   * the f16 scale's range), the TypeScript quantiser (reference/quantize-fast.ts: the references' bytes and errors).
   */
  private quantizeInto(t: Tensor, data: Float32Array | Uint16Array, from: 'f32' | 'f16' | 'bf16'): void {
    if (this.wasm && t.size > 0) {
      // in pieces of at most QUANTIZE_CHUNK bytes of source: a bounded copy in WebAssembly memory, whatever the tensor
      const cols = t.cols;
      const rowBytes = cols * (from === 'f32' ? 4 : 2);
      const chunk = Math.max(1, Math.min(t.rows, Math.floor(QUANTIZE_CHUNK / rowBytes)));
      const src = this.alloc([chunk, cols], from);
      let ok = true;
      try {
        for (let r0 = 0; r0 < t.rows && ok; r0 += chunk) {
          const n = Math.min(chunk, t.rows - r0);
          (src.storage as Float32Array | Uint16Array).set(data.subarray(r0 * cols, (r0 + n) * cols));
          ok = this.wasm.quantize(t, src, r0, n);
        }
      } finally {
        src.dispose();
      }
      if (ok) return;
    }
    const f32 = data instanceof Float32Array ? data : halfToF32(data, from as 'f16' | 'bf16');
    if (t.dtype === 'q8') quantizeQ8Fast(f32, t.rows, t.cols, t.storage as Int8Array);
    else quantizeQ4Fast(f32, t.rows, t.cols, t.storage as Int8Array);
  }

  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    return this.readSync(t);
  }

  /** Synchronous read, CPU only. */
  readSync(t: Tensor): Float32Array | Int32Array {
    t.assertLive();
    const rows = t.rows,
      cols = t.cols;
    if (t.dtype === 'q8') {
      const v = this.q8(t);
      const out = new Float32Array(t.size);
      for (let r = 0; r < rows; r++) dequantizeQ8Row(v, r, out.subarray(r * cols, (r + 1) * cols));
      return out;
    }
    if (t.dtype === 'q4') {
      const v = this.q4(t);
      const out = new Float32Array(t.size);
      for (let r = 0; r < rows; r++) dequantizeQ4Row(v, r, out.subarray(r * cols, (r + 1) * cols));
      return out;
    }
    const v = this.view(t);
    if (t.dtype === 'i32') {
      const out = new Int32Array(t.size);
      const I = v.data as unknown as Int32Array;
      for (let r = 0; r < rows; r++) out.set(I.subarray(v.off + r * v.ld, v.off + r * v.ld + cols), r * cols);
      return out;
    }
    const out = new Float32Array(t.size);
    for (let r = 0; r < rows; r++) {
      const src = v.data.subarray(v.off + r * v.ld, v.off + r * v.ld + cols);
      if (t.dtype === 'f32') out.set(src as Float32Array, r * cols);
      else halfToF32(src as Uint16Array, t.dtype as 'f16' | 'bf16', out.subarray(r * cols, (r + 1) * cols));
    }
    return out;
  }

  /** Returns an owning tensor's memory to its arena. */
  free(t: Tensor): void {
    if (!this.arenas || t.base) return;
    const st = t.storage as CpuStorage;
    const a = this.arenas.arenaOf(st);
    if (!a || a.sizeOf(st.byteOffset) === undefined) return;
    this.finalizer.unregister(st);
    a.free(st.byteOffset);
  }

  async sync(): Promise<void> {}

  /** The typed-array view a TypeScript kernel works on (float, f16/bf16 bits or i32; not q8 or q4). */
  view(t: Tensor): FView {
    if (t.backend !== this) fail('BACKEND_MISMATCH', `a ${t.backend.name} tensor given to the cpu backend`);
    if (isQuantized(t.dtype))
      fail(
        'DTYPE_MISMATCH',
        `${t.toString()}: a ${t.dtype} tensor has no element view; ` +
          `only matmul (b) and embedding (table) take ${t.dtype}`,
      );
    return { data: t.storage as Float32Array | Uint16Array, off: t.offset, ld: t.ld, dtype: t.dtype };
  }

  /** The typed array behind an f32 or i32 tensor, for host code (`BackendMemory.hostView`). */
  hostView(t: Tensor): HostView {
    if (t.backend !== this) fail('BACKEND_MISMATCH', `a ${t.backend.name} tensor given to the cpu backend`);
    if (t.dtype !== 'f32' && t.dtype !== 'i32')
      fail('DTYPE_MISMATCH', `${t.toString()}: hostView gives f32 and i32 tensors only`);
    return { data: t.storage as Float32Array | Int32Array, off: t.offset, ld: t.ld };
  }

  /** The q8 view of a q8 tensor (an owner: views of q8 tensors are not supported). */
  q8(t: Tensor): Q8View {
    if (t.backend !== this) fail('BACKEND_MISMATCH', `a ${t.backend.name} tensor given to the cpu backend`);
    const whole = !t.base || (t.base.rows === t.rows && t.base.cols === t.cols);
    if (t.offset !== 0 || !whole || t.ld !== q8Layout(t.rows, t.cols).ld)
      fail('UNSUPPORTED', `${t.toString()}: views (narrow) of q8 tensors are not supported`);
    return q8View(t.storage as Int8Array, t.rows, t.cols);
  }

  /** The q4 view of a q4 tensor (an owner: views of q4 tensors are not supported). */
  q4(t: Tensor): Q4View {
    if (t.backend !== this) fail('BACKEND_MISMATCH', `a ${t.backend.name} tensor given to the cpu backend`);
    const whole = !t.base || (t.base.rows === t.rows && t.base.cols === t.cols);
    if (t.offset !== 0 || !whole || t.ld !== q4Layout(t.rows, t.cols).ld)
      fail('UNSUPPORTED', `${t.toString()}: views (narrow) of q4 tensors are not supported`);
    return q4View(t.storage as Int8Array, t.rows, t.cols);
  }

  private opt(t: Tensor | null | undefined): FView | null {
    return t ? this.view(t) : null;
  }

  copy(dst: Tensor, src: Tensor): void {
    checkCopy(dst, src);
    if (src.dtype === 'q8') {
      if (dst.dtype === 'q8') {
        const a = this.q8(src),
          b = this.q8(dst);
        b.q.set(a.q);
        b.s.set(a.s);
        return;
      }
      const v = this.q8(src),
        d = this.view(dst);
      for (let r = 0; r < src.rows; r++)
        dequantizeQ8Row(v, r, (d.data as Float32Array).subarray(d.off + r * d.ld, d.off + r * d.ld + src.cols));
      return;
    }
    if (src.dtype === 'q4') {
      if (dst.dtype === 'q4') {
        const a = this.q4(src),
          b = this.q4(dst);
        b.q.set(a.q);
        b.s.set(a.s);
        return;
      }
      const v = this.q4(src),
        d = this.view(dst);
      for (let r = 0; r < src.rows; r++)
        dequantizeQ4Row(v, r, (d.data as Float32Array).subarray(d.off + r * d.ld, d.off + r * d.ld + src.cols));
      return;
    }
    const d = this.view(dst),
      s = this.view(src);
    if (src.dtype === dst.dtype && s.ld === src.cols && d.ld === src.cols) {
      // contiguous rows (a state's (b, e, n) tensors: e rows of n): one copy, not one per row
      const n = src.rows * src.cols;
      (d.data as Float32Array).set((s.data as Float32Array).subarray(s.off, s.off + n), d.off);
      return;
    }
    for (let r = 0; r < src.rows; r++) {
      const seg = s.data.subarray(s.off + r * s.ld, s.off + r * s.ld + src.cols);
      if (src.dtype === dst.dtype) (d.data as Float32Array).set(seg as Float32Array, d.off + r * d.ld);
      else
        halfToF32(
          seg as Uint16Array,
          src.dtype as 'f16' | 'bf16',
          (d.data as Float32Array).subarray(d.off + r * d.ld, d.off + r * d.ld + src.cols),
        );
    }
  }

  fill(t: Tensor, value: number): void {
    t.assertLive();
    if (isQuantized(t.dtype)) fail('DTYPE_MISMATCH', `fill: ${t.toString()}, expected f32, f16, bf16 or i32`);
    const v = this.view(t);
    // 16-bit storage holds bit patterns: fill with the value's pattern
    const x = t.dtype === 'f16' ? f32ToF16Bits(value) : t.dtype === 'bf16' ? f32ToBf16Bits(value) : value;
    for (let r = 0; r < t.rows; r++) (v.data as Float32Array).fill(x, v.off + r * v.ld, v.off + r * v.ld + t.cols);
  }

  // ---- kernels ---------------------------------------------------------------------------------

  /** (DecodeKernels.packWeights) The WebAssembly gemm's panels of constant weights, packed once. */
  packWeights(weights: readonly Tensor[], maxBytes: number): void {
    this.wasm?.packWeights(weights, maxBytes);
  }
  unpackWeights(): void {
    this.wasm?.unpackWeights();
  }
  /** Bytes of weights held packed (packWeights). */
  get packedWeightBytes(): number {
    return this.wasm?.packedBytes ?? 0;
  }

  matmul(out: Tensor, a: Tensor, b: Tensor, o: MatmulOptions = {}): void {
    const [m, q, p] = checkMatmul(out, a, b, o, QUANTIZED);
    const g: MatmulGeom = { m, q, p, transA: !!o.transA, transB: !!o.transB, accumulate: !!o.accumulate };
    const bias = o.bias ?? null;
    if (b.dtype === 'q8') this.q8(b); // rejects views
    if (b.dtype === 'q4') this.q4(b);
    if (m === 0 || p === 0) return;
    if (this.wasm && this.wasm.matmul(out, a, b, bias, g)) return;
    const ov = this.view(out),
      av = this.view(a),
      bv = this.opt(bias);
    const par = this.parallel && this.parallel.threads > 1 && m * q * p >= 1 << 16 ? this.parallel : undefined;
    if (b.dtype === 'q8') {
      if (par) par.matmulQ8(ov, av, b.storage as Int8Array, b.rows, b.cols, bv, g);
      else matmulQ8Cols(ov, av, this.q8(b), bv, g, 0, p);
      return;
    }
    if (b.dtype === 'q4') {
      if (par) par.matmulQ4(ov, av, b.storage as Int8Array, b.rows, b.cols, bv, g);
      else matmulQ4Cols(ov, av, this.q4(b), bv, g, 0, p);
      return;
    }
    const wv = this.view(b);
    if (par) par.matmul(ov, av, wv, bv, g);
    // the backward's products (G·W, Gᵀ·X) repacked into the fast Linear layout (TypeScript kernels only)
    else if ((g.transA || !g.transB) && a.dtype === 'f32' && b.dtype === 'f32' && m * q * p >= 1 << 12)
      matmulRepacked(ov, av, wv, bv, g);
    else matmulCols(ov, av, wv, bv, g, 0, p);
  }

  embedding(out: Tensor, ids: Tensor, table: Tensor): void {
    const { m, d } = checkEmbedding(out, ids, table, QUANTIZED);
    if (m === 0) return;
    if (this.wasm && this.wasm.embedding(out, ids, table, m, d)) return;
    if (table.dtype === 'q8') embeddingQ8(this.view(out), ids.storage as Int32Array, ids.offset, this.q8(table), m, d);
    else if (table.dtype === 'q4')
      embeddingQ4(this.view(out), ids.storage as Int32Array, ids.offset, this.q4(table), m, d);
    else embedding(this.view(out), this.view(ids) as View, this.view(table), m, d);
  }

  addRmsnorm(out: Tensor, residual: Tensor, x: Tensor | null, weight: Tensor, eps: number, xScale = 1): void {
    const { m, d } = checkRmsnorm(out, residual, x, weight);
    if (this.wasm && this.wasm.addRmsnorm(out, residual, x, weight, m, d, eps, xScale)) return;
    addRmsnorm(this.view(out), this.view(residual), this.opt(x), this.view(weight), m, d, eps, xScale);
  }

  causalConv1d(out: Tensor, x: Tensor, weight: Tensor, bias: Tensor | null, state: Tensor | null, silu: boolean): void {
    const { b, l, e, k } = checkConv(out, x, weight, bias, state);
    if (this.wasm && this.wasm.causalConv1d(out, x, weight, bias, state, b, l, e, k, silu)) return;
    causalConv1d(this.view(out), this.view(x), this.view(weight), this.opt(bias), this.opt(state), b, l, e, k, silu);
  }

  selectiveScan(s: SelectiveScanArgs): void {
    const { b, l, e, n } = checkScan(s);
    if (this.wasm && this.wasm.selectiveScan(s, b, l, e, n)) return;
    const v: ScanViews = {
      y: this.view(s.y),
      u: this.view(s.u),
      delta: this.view(s.delta),
      A: this.view(s.A),
      B: this.view(s.B),
      C: this.view(s.C),
      D: this.opt(s.D),
      z: this.opt(s.z),
      deltaBias: this.opt(s.deltaBias),
      h0: this.opt(s.h0),
      hOut: this.opt(s.hOut),
      deltaSoftplus: s.deltaSoftplus,
    };
    if (this.parallel && this.parallel.threads > 1 && b * l * e * n >= 1 << 14) this.parallel.scan(v, b, l, e, n);
    else selectiveScan(v, b, l, e, n);
  }

  ssdScan(s: SsdScanArgs): void {
    const dims = checkSsdScan(s);
    if (this.wasm?.ssdScan(s, dims)) return;
    ssdChunkScan(this.ssdViews(s), dims);
  }

  /** The typed-array views of an SSD scan's arguments (also what the sequential reference takes). */
  ssdViews(s: SsdScanArgs): SsdViews {
    return {
      y: this.view(s.y),
      x: this.view(s.x),
      dt: this.view(s.dt),
      A: this.view(s.A),
      B: this.view(s.B),
      C: this.view(s.C),
      D: this.opt(s.D),
      dtBias: this.opt(s.dtBias),
      h0: this.opt(s.h0),
      hOut: this.opt(s.hOut),
      dtSoftplus: s.dtSoftplus,
      dtMin: s.dtLimit[0],
      dtMax: s.dtLimit[1],
      chunkSize: s.chunkSize,
    };
  }

  gatedRmsnorm(out: Tensor, x: Tensor, z: Tensor | null, weight: Tensor, o: GatedRmsnormOptions): void {
    const { m, e } = checkGatedRmsnorm(out, x, z, weight, o);
    if (this.wasm?.gatedRmsnorm(out, x, z, weight, m, e, o.groupSize, o.eps, o.normBeforeGate)) return;
    gatedRmsnorm(
      this.view(out),
      this.view(x),
      this.opt(z),
      this.view(weight),
      m,
      e,
      o.groupSize,
      o.eps,
      o.normBeforeGate,
    );
  }

  unary(op: UnaryOp, out: Tensor, x: Tensor): void {
    checkElementwise(op, out, x);
    if (this.wasm?.unary(op, out, x)) return;
    unary(op, this.view(out), this.view(x), x.rows, x.cols);
  }

  binary(op: BinaryOp, out: Tensor, a: Tensor, b: Tensor): void {
    checkElementwise(op, out, a, b);
    const broadcast = b.size === a.cols && !(b.rows === a.rows && b.cols === a.cols);
    if (this.wasm && this.wasm.binary(op, out, a, b, broadcast)) return;
    binary(op, this.view(out), this.view(a), this.view(b), a.rows, a.cols, broadcast);
  }

  argmax(out: Tensor, x: Tensor): void {
    checkArgmax(out, x);
    checkFloat('argmax', 'x', x);
    if (this.wasm && this.wasm.argmax(out, x)) return;
    argmax(out.storage as Int32Array, out.offset, this.view(x), x.rows, x.cols);
  }

  private sampler: Sampler | undefined;

  /** The reference of `Backend.sample`: `Sampler` row by row, the seen mask as the penalty's id list. */
  sample(a: SampleArgs): void {
    const { b, V } = checkSample(a);
    const L = this.view(a.logits);
    const out = a.out.storage as Int32Array;
    const seen = a.seen ? (a.seen.storage as Int32Array) : null;
    const sup = a.suppress ? (a.suppress.storage as Int32Array) : null;
    const sampler = (this.sampler ??= new Sampler());
    const row = new Float32Array(V);
    const counter = a.stepCounter ? (a.stepCounter.storage as Int32Array) : null;
    const step = counter ? counter[a.stepCounter!.offset] : a.step;
    for (let r = 0; r < b; r++) {
      const lo = L.off + r * L.ld;
      row.set((L.data as Float32Array).subarray(lo, lo + V));
      if (sup) for (let i = 0; i < V; i++) if (sup[a.suppress!.offset + i]) row[i] = -Infinity;
      let ids: number[] | null = null;
      if (seen) {
        ids = [];
        const so = a.seen!.offset + r * a.seen!.ld;
        for (let i = 0; i < V; i++) if (seen[so + i]) ids.push(i);
      }
      const id = sampler.sample(row, 0, V, a.params, ids, r, step);
      out[a.out.offset + r] = id;
      if (seen) seen[a.seen!.offset + r * a.seen!.ld + id] = 1;
    }
    if (counter) counter[a.stepCounter!.offset] = step + 1;
  }

  /**
   * Memory read bandwidth in GB/s (1e9 bytes/s) on the current threads: the best of `reps` passes
   * over a fresh buffer of `bytes` (the benchmark's bandwidth limit). WebAssembly kernels only.
   */
  measureReadBandwidth(bytes = 1 << 30, reps = 5): number {
    if (!this.wasm) fail('UNSUPPORTED', 'measureReadBandwidth needs the WebAssembly kernels');
    const t = this.alloc([Math.max(1, Math.floor(bytes / (1 << 20))) << 18]);
    (t.storage as Float32Array).fill(1); // touch every page first
    let best = Infinity;
    for (let r = 0; r < reps; r++) best = Math.min(best, this.wasm.streamRead(t));
    t.dispose();
    return (t.size * 4) / best / 1e9;
  }

  /** Stops the worker threads (the backend stays usable on one thread). */
  dispose(): void {
    this.pool?.close();
    this.pool = undefined;
    this.parallel = undefined;
    if (this.wasm) this.wasm.pool = undefined;
  }

  // ---- training kernels ---------------------------------------------------------------------------
  // The scan's and the conv's backward and the cross-entropy's row passes run in WebAssembly (the
  // scan split over the pool by batch rows, the conv by channels), the TypeScript kernels being the
  // reference and the fallback; the products of every backward go through `matmul` above.

  reduceRows(op: ReduceOp, out: Tensor, x: Tensor, accumulate = false): void {
    const { m, p } = checkReduceRows(out, x);
    reduceRows(op, this.view(out), this.view(x), m, p, accumulate);
  }

  unaryBackward(op: UnaryOp, dx: Tensor, g: Tensor, x: Tensor, y: Tensor): void {
    checkUnaryBackward(op, dx, g, x, y);
    unaryBackward(op, this.view(dx), this.view(g), this.view(x), this.view(y), x.rows, x.cols);
  }

  embeddingBackward(dTable: Tensor, ids: Tensor, g: Tensor): void {
    const { m, d } = checkEmbeddingBackward(dTable, ids, g);
    embeddingBackward(this.view(dTable), this.view(ids) as View, this.view(g), m, d);
  }

  rmsnormBackward(dx: Tensor, dWeight: Tensor, g: Tensor, x: Tensor, weight: Tensor, eps: number): void {
    const { m, d } = checkRmsnormBackward(dx, dWeight, g, x, weight);
    rmsnormBackward(this.view(dx), this.view(dWeight), this.view(g), this.view(x), this.view(weight), m, d, eps);
  }

  causalConv1dBackward(a: CausalConv1dBackwardArgs): void {
    const { b, l, e, k } = checkConvBackward(a);
    if (this.wasm && b * l * e * k > 0 && this.wasm.causalConv1dBackward(a, b, l, e, k)) return;
    causalConv1dBackward(
      this.view(a.dx),
      this.view(a.dWeight),
      this.opt(a.dBias),
      this.view(a.g),
      this.view(a.x),
      this.view(a.weight),
      this.opt(a.bias),
      b,
      l,
      e,
      k,
      a.silu,
    );
  }

  selectiveScanBackward(s: SelectiveScanBackwardArgs): void {
    const { b, l, e, n } = checkScanBackward(s);
    // (the WebAssembly loops run at least once: empty sizes take the reference)
    if (this.wasm && b * l * e * n > 0 && this.wasm.selectiveScanBackward(s, b, l, e, n, s.chunk ?? 64)) return;
    selectiveScanBackward(
      {
        dy: this.view(s.dy),
        u: this.view(s.u),
        delta: this.view(s.delta),
        A: this.view(s.A),
        B: this.view(s.B),
        C: this.view(s.C),
        D: this.opt(s.D),
        z: this.opt(s.z),
        deltaBias: this.opt(s.deltaBias),
        h0: this.opt(s.h0),
        deltaSoftplus: s.deltaSoftplus,
        du: this.view(s.du),
        dDelta: this.view(s.dDelta),
        dA: this.view(s.dA),
        dB: this.view(s.dB),
        dC: this.view(s.dC),
        dD: this.opt(s.dD),
        dz: this.opt(s.dz),
        dDeltaBias: this.opt(s.dDeltaBias),
        dh0: this.opt(s.dh0),
      },
      b,
      l,
      e,
      n,
      s.chunk ?? 64,
    );
  }

  ssdScanBackward(s: SsdScanBackwardArgs): void {
    const dims = checkSsdScanBackward(s);
    ssdScanBackward(
      {
        dy: this.view(s.dy),
        x: this.view(s.x),
        dt: this.view(s.dt),
        A: this.view(s.A),
        B: this.view(s.B),
        C: this.view(s.C),
        D: this.opt(s.D),
        dtBias: this.opt(s.dtBias),
        h0: this.opt(s.h0),
        dtSoftplus: s.dtSoftplus,
        dtMin: s.dtLimit[0],
        dtMax: s.dtLimit[1],
        dx: this.view(s.dx),
        dDt: this.view(s.dDt),
        dA: this.view(s.dA),
        dB: this.view(s.dB),
        dC: this.view(s.dC),
        dD: this.opt(s.dD),
        dDtBias: this.opt(s.dDtBias),
        dh0: this.opt(s.dh0),
      },
      dims,
      s.chunk ?? 64,
    );
  }

  crossEntropy(out: Tensor, logits: Tensor, targets: Tensor, reduction: LossReduction): void {
    const { m, V } = checkCrossEntropy('crossEntropy', out, logits, targets, 'scalar');
    if (this.wasm && m * V > 0 && this.wasm.crossEntropy(out, logits, targets, m, V, reduction)) return;
    crossEntropy(this.view(out), this.view(logits), this.view(targets) as View, m, V, reduction);
  }

  crossEntropyBackward(dLogits: Tensor, logits: Tensor, targets: Tensor, g: Tensor, reduction: LossReduction): void {
    const { m, V } = checkCrossEntropy('crossEntropyBackward', dLogits, logits, targets, 'logits');
    checkFloat('crossEntropyBackward', 'g', g);
    if (g.size !== 1)
      fail('SHAPE_MISMATCH', `crossEntropyBackward: g has shape (${g.shape.join(', ')}), expected one element`);
    if (
      this.wasm &&
      m * V > 0 &&
      this.wasm.crossEntropyBackward(dLogits, logits, targets, this.readSync(g)[0], m, V, reduction)
    )
      return;
    crossEntropyBackward(
      this.view(dLogits),
      this.view(logits),
      this.view(targets) as View,
      this.view(g),
      m,
      V,
      reduction,
    );
  }

  adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWStepOptions): void {
    checkAdamw(param, grad, m, v, o);
    adamwStep(this.view(param), this.view(grad), this.view(m), this.view(v), param.rows, param.cols, o);
  }

  // ---- other sequence mixers (single-threaded) ----------------------------------------------------

  fftConv(y: Tensor, u: Tensor, K: Tensor): void {
    const { b, l, e } = checkFftConv('fftConv', y, u, K);
    fftConv(this.view(y), this.view(u), this.view(K), b, l, e);
  }

  fftConvBackward(du: Tensor, dK: Tensor, g: Tensor, u: Tensor, K: Tensor): void {
    const { b, l, e, lk } = checkFftConvBackward(du, dK, g, u, K);
    fftConvBackward(this.view(du), this.view(dK), this.view(g), this.view(u), this.view(K), b, l, e, lk);
  }

  private ssmViews(p: SsmParams): SsmViews {
    return {
      dt: this.view(p.dt),
      ARe: this.view(p.ARe),
      AIm: this.view(p.AIm),
      CRe: this.view(p.CRe),
      CIm: this.view(p.CIm),
    };
  }

  ssmConvKernel(a: SsmConvKernelArgs): void {
    const { L, e, N } = checkSsmConvKernel(a);
    ssmConvKernel(this.view(a.K), this.ssmViews(a), L, e, N, a.scale);
  }

  ssmConvKernelBackward(a: SsmConvKernelBackwardArgs): void {
    const { L, e, N } = checkSsmConvKernelBackward(a);
    ssmConvKernelBackward(
      this.ssmViews(a),
      {
        g: this.view(a.g),
        dDt: this.view(a.dDt),
        dARe: this.view(a.dARe),
        dAIm: this.view(a.dAIm),
        dCRe: this.view(a.dCRe),
        dCIm: this.view(a.dCIm),
      },
      L,
      e,
      N,
      a.scale,
    );
  }

  diagonalSsmScan(a: DiagonalSsmScanArgs): void {
    const { b, l, e, N } = checkDiagonalSsmScan(a);
    diagonalSsmScan(
      this.view(a.y),
      this.view(a.u),
      this.opt(a.D),
      this.opt(a.state),
      this.ssmViews(a),
      b,
      l,
      e,
      N,
      a.scale,
    );
  }

  attention(a: AttentionArgs): void {
    const d: AttentionDims = checkAttention('attention', a);
    if (a.rowKeys) d.rowKeys = this.rowKeys(a.rowKeys, d);
    if (this.wasm && this.wasm.attention(a, d)) return;
    attention(this.view(a.out), this.view(a.q), this.view(a.k), this.view(a.v), d, a.scale);
  }

  /** Attention's per-sequence key counts, checked to lie in [lq, keys]; `d.keys` becomes their maximum. */
  private rowKeys(t: Tensor, d: AttentionDims): Int32Array {
    const h = this.hostView(t);
    const out = new Int32Array(d.b);
    let most = d.lq;
    for (let bi = 0; bi < d.b; bi++) {
      const n = h.data[h.off + bi];
      if (!(Number.isInteger(n) && n >= d.lq && n <= d.keys))
        fail('BAD_ARGUMENT', `attention: rowKeys[${bi}] is ${n}, expected an integer in [${d.lq}, ${d.keys}]`);
      out[bi] = n;
      most = Math.max(most, n);
    }
    d.keys = most;
    return out;
  }

  attentionBackward(a: AttentionBackwardArgs): void {
    const { b, l, H, dk, dv } = checkAttentionBackward(a);
    attentionBackward(
      this.view(a.dq),
      this.view(a.dk),
      this.view(a.dv),
      this.view(a.g),
      this.view(a.q),
      this.view(a.k),
      this.view(a.v),
      b,
      l,
      H,
      dk,
      dv,
      a.scale,
    );
  }

  rotary(out: Tensor, x: Tensor, o: RotaryOptions): void {
    const { b, l, H, dh } = checkRotary(out, x, o);
    let starts: number[] | undefined;
    if (o.rowStarts) {
      const h = this.hostView(o.rowStarts);
      starts = Array.from({ length: b }, (_, bi) => h.data[h.off + bi]);
      const bad = starts.findIndex((s) => !(Number.isInteger(s) && s >= 0));
      if (bad >= 0) fail('BAD_ARGUMENT', `rotary: rowStarts[${bad}] is ${starts[bad]}, expected an integer >= 0`);
    }
    rotary(this.view(out), this.view(x), b, l, H, dh, o.start, o.base, !!o.inverse, starts);
  }

  moeRoute(weights: Tensor, logits: Tensor, bias: Tensor | null, o: MoeRouteOptions): void {
    const { m, E } = checkMoeRoute(weights, logits, bias, o);
    moeRoute(this.view(weights), this.view(logits), this.opt(bias), m, E, o);
  }

  moeAccumulate(out: Tensor, y: Tensor, weights: Tensor, expert: number): void {
    const { m, d } = checkMoeAccumulate(out, y, weights, expert);
    moeAccumulate(this.view(out), this.view(y), this.view(weights), m, d, expert);
  }

  private mamba3Views(a: Omit<Mamba3ScanArgs, 'y' | 'state'>, y: Tensor, st: Mamba3ScanArgs['state']): Mamba3Views {
    return {
      y: this.view(y),
      proj: this.view(a.proj),
      dtBias: this.view(a.dtBias),
      BNorm: this.view(a.BNorm),
      CNorm: this.view(a.CNorm),
      BBias: this.view(a.BBias),
      CBias: this.view(a.CBias),
      D: this.view(a.D),
      mimoX: this.opt(a.mimoX),
      mimoZ: this.opt(a.mimoZ),
      mimoO: this.opt(a.mimoO),
      normWeight: this.opt(a.normWeight),
      state: st ? { theta: this.view(st.theta), ssm: this.view(st.ssm), k: this.view(st.k), x: this.view(st.x) } : null,
    };
  }

  mamba3Scan(a: Mamba3ScanArgs): void {
    const { b, l } = checkMamba3Scan(a);
    if (this.wasm?.mamba3Scan(a, b, l)) return;
    mamba3Scan(this.mamba3Views(a, a.y, a.state), b, l, a.dims);
  }

  mamba3ScanBackward(a: Mamba3ScanBackwardArgs): void {
    const { b, l } = checkMamba3ScanBackward(a);
    if (this.wasm?.mamba3ScanBackward(a, b, l)) return;
    const grads = {
      dProj: this.view(a.dProj),
      dDtBias: this.view(a.dDtBias),
      dBNorm: this.view(a.dBNorm),
      dCNorm: this.view(a.dCNorm),
      dBBias: this.view(a.dBBias),
      dCBias: this.view(a.dCBias),
      dD: this.view(a.dD),
      dMimoX: this.opt(a.dMimoX),
      dMimoZ: this.opt(a.dMimoZ),
      dMimoO: this.opt(a.dMimoO),
      dNormWeight: this.opt(a.dNormWeight),
    };
    mamba3ScanBackward(this.mamba3Views(a, a.g, null), this.view(a.g), grads, b, l, a.dims);
  }
}

let defaultCpu: CpuBackend | undefined;
/** The process-wide CPU backend. */
export function cpu(): CpuBackend {
  return (defaultCpu ??= new CpuBackend());
}
