import { fail } from '../../errors.js';
import { dtypeBytes, halfToF32, type DType } from '../../tensor/dtype.js';
import { numel } from '../../tensor/shape.js';
import { Tensor } from '../../tensor/tensor.js';
import { track } from '../../tensor/scope.js';
import type {
  AdamWStepOptions, AttentionArgs, AttentionBackwardArgs, Backend, BinaryOp, CausalConv1dBackwardArgs, DiagonalSsmScanArgs, LossReduction, MatmulOptions,
  ReduceOp, RotaryOptions, SelectiveScanArgs, SelectiveScanBackwardArgs, SsmConvKernelArgs, SsmConvKernelBackwardArgs, SsmParams, UnaryOp,
} from '../backend.js';
import {
  checkAdamw, checkArgmax, checkConv, checkConvBackward, checkCrossEntropy, checkElementwise, checkEmbedding, checkEmbeddingBackward, checkFloat,
  checkMatmul, checkReduceRows, checkRmsnorm, checkRmsnormBackward, checkSameBackend, checkScan, checkScanBackward, checkUnaryBackward,
  checkAttention, checkAttentionBackward, checkDiagonalSsmScan, checkFftConv, checkFftConvBackward, checkRotary, checkSsmConvKernel, checkSsmConvKernelBackward,
} from '../checks.js';
import { attention } from './attention.js';
import { attentionBackward } from './attention-backward.js';
import { diagonalSsmScan } from './diagonal-ssm-scan.js';
import { fftConv } from './fft-conv.js';
import { fftConvBackward } from './fft-conv-backward.js';
import { rotary } from './rotary.js';
import { ssmConvKernel, type SsmViews } from './ssm-conv-kernel.js';
import { ssmConvKernelBackward } from './ssm-conv-kernel-backward.js';
import { adamwStep } from './adamw.js';
import { causalConv1d } from './conv1d.js';
import { causalConv1dBackward } from './conv1d-backward.js';
import { crossEntropy } from './cross-entropy.js';
import { crossEntropyBackward } from './cross-entropy-backward.js';
import { embeddingBackward } from './embedding-backward.js';
import { reduceRows } from './reduce.js';
import { rmsnormBackward } from './rmsnorm-backward.js';
import { selectiveScanBackward } from './selective-scan-backward.js';
import { unaryBackward } from './unary-backward.js';
import { argmax, binary, unary } from './elementwise.js';
import { embedding } from './embedding.js';
import { matmulCols, type MatmulGeom } from './matmul.js';
import { addRmsnorm } from './rmsnorm.js';
import { selectiveScan, type ScanViews } from './selective-scan.js';
import type { FView, View } from './view.js';

/** Work that a thread pool can split: matmul by output columns, the scan by channels. */
export interface CpuParallel {
  readonly threads: number;
  matmul(out: FView, a: FView, b: FView, bias: FView | null, g: MatmulGeom): void;
  scan(s: ScanViews, b: number, l: number, e: number, n: number): void;
}

export type CpuStorage = Float32Array | Uint16Array | Int32Array;

/** True where memory can be shared with workers (Node; cross-origin-isolated pages). */
const canShare = typeof SharedArrayBuffer !== 'undefined' && (typeof globalThis.crossOriginIsolated === 'undefined' || globalThis.crossOriginIsolated);

/**
 * The reference backend: plain TypeScript over typed arrays, the specification every other kernel is
 * tested against. Storage lives in SharedArrayBuffers where possible so a worker pool (`pool.ts`) can
 * split matmuls and scans without copying.
 */
export class CpuBackend implements Backend {
  readonly name = 'cpu';
  /** Set by `useThreads`; undefined runs everything on the calling thread. */
  parallel: CpuParallel | undefined;

  alloc(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const n = numel(shape);
    const bytes = Math.max(n, 1) * dtypeBytes(dtype);
    const buf = canShare ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
    const data: CpuStorage = dtype === 'f32' ? new Float32Array(buf, 0, n) : dtype === 'i32' ? new Int32Array(buf, 0, n) : new Uint16Array(buf, 0, n);
    return track(new Tensor(this, data, shape, dtype));
  }

  zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    return this.alloc(shape, dtype); // fresh buffers are zeroed
  }

  upload(data: Float32Array | Uint16Array | Int32Array, shape: readonly number[], dtype?: DType): Tensor {
    const dt = dtype ?? (data instanceof Float32Array ? 'f32' : data instanceof Int32Array ? 'i32' : fail('BAD_ARGUMENT', 'upload: a Uint16Array needs dtype f16 or bf16'));
    const n = numel(shape);
    if (data.length !== n) fail('SHAPE_MISMATCH', `upload: ${data.length} elements for shape (${shape.join(', ')}), expected ${n}`);
    const want = dt === 'f32' ? Float32Array : dt === 'i32' ? Int32Array : Uint16Array;
    if (!(data instanceof want)) fail('DTYPE_MISMATCH', `upload: a ${data.constructor.name} for dtype ${dt}`);
    const t = this.alloc(shape, dt);
    (t.storage as CpuStorage).set(data);
    return t;
  }

  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    return this.readSync(t);
  }

  /** Synchronous read, CPU only. */
  readSync(t: Tensor): Float32Array | Int32Array {
    t.assertLive();
    const v = this.view(t);
    const rows = t.rows, cols = t.cols;
    if (t.dtype === 'i32') {
      const out = new Int32Array(t.size);
      const I = v.data as unknown as Int32Array;
      for (let r = 0; r < rows; r++) out.set((I).subarray(v.off + r * v.ld, v.off + r * v.ld + cols), r * cols);
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

  free(_t: Tensor): void {}

  async sync(): Promise<void> {}

  /** The typed-array view a kernel works on. */
  view(t: Tensor): FView {
    if (t.backend !== this) fail('BACKEND_MISMATCH', `a ${t.backend.name} tensor given to the cpu backend`);
    return { data: t.storage as Float32Array | Uint16Array, off: t.offset, ld: t.ld, dtype: t.dtype };
  }

  private opt(t: Tensor | null | undefined): FView | null {
    return t ? this.view(t) : null;
  }

  copy(dst: Tensor, src: Tensor): void {
    checkSameBackend('copy', dst, src);
    if (dst.rows !== src.rows || dst.cols !== src.cols) fail('SHAPE_MISMATCH', `copy: ${dst.toString()} <- ${src.toString()}`);
    if (src.dtype === 'i32' || dst.dtype === 'i32') {
      if (src.dtype !== dst.dtype) fail('DTYPE_MISMATCH', `copy: ${src.dtype} -> ${dst.dtype}`);
    } else if (dst.dtype !== 'f32' && dst.dtype !== src.dtype) fail('DTYPE_MISMATCH', `copy: ${src.dtype} -> ${dst.dtype}`);
    const d = this.view(dst), s = this.view(src);
    for (let r = 0; r < src.rows; r++) {
      const seg = s.data.subarray(s.off + r * s.ld, s.off + r * s.ld + src.cols);
      if (src.dtype === dst.dtype) (d.data as Float32Array).set(seg as Float32Array, d.off + r * d.ld);
      else halfToF32(seg as Uint16Array, src.dtype as 'f16' | 'bf16', (d.data as Float32Array).subarray(d.off + r * d.ld, d.off + r * d.ld + src.cols));
    }
  }

  fill(t: Tensor, value: number): void {
    t.assertLive();
    const v = this.view(t);
    for (let r = 0; r < t.rows; r++) (v.data as Float32Array).fill(value, v.off + r * v.ld, v.off + r * v.ld + t.cols);
  }

  matmul(out: Tensor, a: Tensor, b: Tensor, o: MatmulOptions = {}): void {
    const [m, q, p] = checkMatmul(out, a, b, o);
    const g: MatmulGeom = { m, q, p, transA: !!o.transA, transB: !!o.transB, accumulate: !!o.accumulate };
    const ov = this.view(out), av = this.view(a), bv = this.view(b), bias = this.opt(o.bias);
    if (this.parallel && this.parallel.threads > 1 && m * q * p >= 1 << 16) this.parallel.matmul(ov, av, bv, bias, g);
    else matmulCols(ov, av, bv, bias, g, 0, p);
  }

  embedding(out: Tensor, ids: Tensor, table: Tensor): void {
    const { m, d } = checkEmbedding(out, ids, table);
    embedding(this.view(out), this.view(ids) as View, this.view(table), m, d);
  }

  addRmsnorm(out: Tensor, residual: Tensor, x: Tensor | null, weight: Tensor, eps: number): void {
    const { m, d } = checkRmsnorm(out, residual, x, weight);
    addRmsnorm(this.view(out), this.view(residual), this.opt(x), this.view(weight), m, d, eps);
  }

  causalConv1d(out: Tensor, x: Tensor, weight: Tensor, bias: Tensor | null, state: Tensor | null, silu: boolean): void {
    const { b, l, e, k } = checkConv(out, x, weight, bias, state);
    causalConv1d(this.view(out), this.view(x), this.view(weight), this.opt(bias), this.opt(state), b, l, e, k, silu);
  }

  selectiveScan(s: SelectiveScanArgs): void {
    const { b, l, e, n } = checkScan(s);
    const v: ScanViews = {
      y: this.view(s.y), u: this.view(s.u), delta: this.view(s.delta), A: this.view(s.A), B: this.view(s.B), C: this.view(s.C),
      D: this.opt(s.D), z: this.opt(s.z), deltaBias: this.opt(s.deltaBias), h0: this.opt(s.h0), hOut: this.opt(s.hOut),
      deltaSoftplus: s.deltaSoftplus,
    };
    if (this.parallel && this.parallel.threads > 1 && b * l * e * n >= 1 << 14) this.parallel.scan(v, b, l, e, n);
    else selectiveScan(v, b, l, e, n);
  }

  unary(op: UnaryOp, out: Tensor, x: Tensor): void {
    checkElementwise(op, out, x);
    unary(op, this.view(out), this.view(x), x.rows, x.cols);
  }

  binary(op: BinaryOp, out: Tensor, a: Tensor, b: Tensor): void {
    checkElementwise(op, out, a, b);
    const broadcast = b.size === a.cols && !(b.rows === a.rows && b.cols === a.cols);
    binary(op, this.view(out), this.view(a), this.view(b), a.rows, a.cols, broadcast);
  }

  argmax(out: Tensor, x: Tensor): void {
    checkArgmax(out, x);
    checkFloat('argmax', 'x', x);
    argmax(out.storage as Int32Array, out.offset, this.view(x), x.rows, x.cols);
  }

  // ---- training kernels (single-threaded) ---------------------------------------------------------

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
    causalConv1dBackward(this.view(a.dx), this.view(a.dWeight), this.opt(a.dBias), this.view(a.g), this.view(a.x), this.view(a.weight), this.opt(a.bias), b, l, e, k, a.silu);
  }

  selectiveScanBackward(s: SelectiveScanBackwardArgs): void {
    const { b, l, e, n } = checkScanBackward(s);
    selectiveScanBackward({
      dy: this.view(s.dy), u: this.view(s.u), delta: this.view(s.delta), A: this.view(s.A), B: this.view(s.B), C: this.view(s.C),
      D: this.opt(s.D), z: this.opt(s.z), deltaBias: this.opt(s.deltaBias), h0: this.opt(s.h0), deltaSoftplus: s.deltaSoftplus,
      du: this.view(s.du), dDelta: this.view(s.dDelta), dA: this.view(s.dA), dB: this.view(s.dB), dC: this.view(s.dC),
      dD: this.opt(s.dD), dz: this.opt(s.dz), dDeltaBias: this.opt(s.dDeltaBias), dh0: this.opt(s.dh0),
    }, b, l, e, n, s.chunk ?? 64);
  }

  crossEntropy(out: Tensor, logits: Tensor, targets: Tensor, reduction: LossReduction): void {
    const { m, V } = checkCrossEntropy('crossEntropy', out, logits, targets, 'scalar');
    crossEntropy(this.view(out), this.view(logits), this.view(targets) as View, m, V, reduction);
  }

  crossEntropyBackward(dLogits: Tensor, logits: Tensor, targets: Tensor, g: Tensor, reduction: LossReduction): void {
    const { m, V } = checkCrossEntropy('crossEntropyBackward', dLogits, logits, targets, 'logits');
    checkFloat('crossEntropyBackward', 'g', g);
    if (g.size !== 1) fail('SHAPE_MISMATCH', `crossEntropyBackward: g has shape (${g.shape.join(', ')}), expected one element`);
    crossEntropyBackward(this.view(dLogits), this.view(logits), this.view(targets) as View, this.view(g), m, V, reduction);
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
    return { dt: this.view(p.dt), ARe: this.view(p.ARe), AIm: this.view(p.AIm), CRe: this.view(p.CRe), CIm: this.view(p.CIm) };
  }

  ssmConvKernel(a: SsmConvKernelArgs): void {
    const { L, e, N } = checkSsmConvKernel(a);
    ssmConvKernel(this.view(a.K), this.ssmViews(a), L, e, N, a.scale);
  }

  ssmConvKernelBackward(a: SsmConvKernelBackwardArgs): void {
    const { L, e, N } = checkSsmConvKernelBackward(a);
    ssmConvKernelBackward(this.ssmViews(a), {
      g: this.view(a.g), dDt: this.view(a.dDt), dARe: this.view(a.dARe), dAIm: this.view(a.dAIm), dCRe: this.view(a.dCRe), dCIm: this.view(a.dCIm),
    }, L, e, N, a.scale);
  }

  diagonalSsmScan(a: DiagonalSsmScanArgs): void {
    const { b, l, e, N } = checkDiagonalSsmScan(a);
    diagonalSsmScan(this.view(a.y), this.view(a.u), this.opt(a.D), this.opt(a.state), this.ssmViews(a), b, l, e, N, a.scale);
  }

  attention(a: AttentionArgs): void {
    const d = checkAttention('attention', a);
    attention(this.view(a.out), this.view(a.q), this.view(a.k), this.view(a.v), d, a.scale);
  }

  attentionBackward(a: AttentionBackwardArgs): void {
    const { b, l, H, dk, dv } = checkAttentionBackward(a);
    attentionBackward(this.view(a.dq), this.view(a.dk), this.view(a.dv), this.view(a.g), this.view(a.q), this.view(a.k), this.view(a.v), b, l, H, dk, dv, a.scale);
  }

  rotary(out: Tensor, x: Tensor, o: RotaryOptions): void {
    const { b, l, H, dh } = checkRotary(out, x, o);
    rotary(this.view(out), this.view(x), b, l, H, dh, o.start, o.base, !!o.inverse);
  }
}

let defaultCpu: CpuBackend | undefined;
/** The process-wide CPU backend. */
export function cpu(): CpuBackend {
  return (defaultCpu ??= new CpuBackend());
}
