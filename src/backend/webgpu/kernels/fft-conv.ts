import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { GpuStorage } from '../gpu-buffers.js';
import type { KernelHost } from '../kernel-host.js';
import { checkIndex, grid } from './launch.js';
import * as W from './wgsl.gen.js';

const entry = <K extends 'fc_pack' | 'fc_stage' | 'fc_mul' | 'fc_mulsum' | 'fc_unpack'>(k: K) =>
  kernel(W.fftConv, k, { name: `fftConv.${k.slice(3)}` });
const PACK = entry('fc_pack');
const STAGE = entry('fc_stage');
const MUL = entry('fc_mul');
const MULSUM = entry('fc_mulsum');
const UNPACK = entry('fc_unpack');

/** Every field of the parameter block (the entries read the ones they need). */
interface Params {
  n: number;
  rows: number;
  e: number;
  nb: number;
  l: number;
  lz: number;
  Ns: number;
  inverse: number;
  conjK: number;
  off: number;
  ld: number;
  scale: number;
}

/**
 * The FFT convolution on the GPU (fft-conv.wgsl): per (sequence, channel) row, complex FFTs of length
 * n = the power of two >= 2l in log2 n radix-2 Stockham passes over global memory (any n, rows of any
 * number), so lengths past what a workgroup's memory holds (the 2^20 of the induction-heads test) work
 * too. O(b·e·n log n); scratch 2 (or 4 for the backward) b·e·n complex numbers + 2 e·n.
 */
class FftConv {
  readonly n: number;
  private readonly owned: GpuStorage[] = [];
  private readonly base: Params;

  constructor(
    private readonly bk: KernelHost,
    readonly b: number,
    readonly l: number,
    readonly e: number,
  ) {
    let n = 1;
    while (n < 2 * l) n *= 2;
    this.n = n;
    checkIndex('fftConv', 2 * b * e * n);
    this.base = { n, rows: 0, e, nb: 1, l, lz: l, Ns: 1, inverse: 0, conjK: 0, off: 0, ld: 0, scale: 1 };
  }

  /** `rows` rows of n complex numbers. */
  take(rows: number): GpuStorage {
    const s = this.bk.scratch(Math.max(rows * this.n, 1) * 8);
    this.owned.push(s);
    return s;
  }

  private run(
    pipe: string,
    k: Parameters<KernelHost['d']['pipe']>[1],
    bufs: object,
    p: Partial<Params>,
    threads: number,
  ) {
    const d = this.bk.d;
    d.run(d.pipe(pipe, k), bufs as never, { ...this.base, ...p }, ...grid(threads, 64));
  }

  /** The (nb, l, e) view `t` (its first l rows per sequence) into rows nb·e of `X`, zero-padded. */
  pack(t: Tensor, nb: number, X: GpuStorage): void {
    const rows = nb * this.e;
    this.run('fftConv.pack', PACK, { src: this.bk.buf(t), X }, { rows, nb, off: t.offset, ld: t.ld }, rows * this.n);
  }

  /** The transform (inverse: conjugate twiddles, unscaled) of `rows` rows of `a`; `b` is the other buffer. Returns where it ends. */
  fft(rows: number, a: GpuStorage, b: GpuStorage, inverse: boolean): GpuStorage {
    let [from, to] = [a, b];
    for (let Ns = 1; Ns < this.n; Ns *= 2) {
      this.run(
        'fftConv.stage',
        STAGE,
        { Xr: from, X: to },
        { rows, Ns, inverse: inverse ? 1 : 0 },
        (rows * this.n) / 2,
      );
      [from, to] = [to, from];
    }
    return from;
  }

  /** Rows nb·e of X times the filter's spectrum (or its conjugate), in place. */
  mul(X: GpuStorage, KF: GpuStorage, nb: number, conj: boolean): void {
    const rows = nb * this.e;
    this.run('fftConv.mul', MUL, { X, KF }, { rows, conjK: conj ? 1 : 0 }, rows * this.n);
  }

  /** S = sum over the nb sequences of G·conj(U) (e rows). */
  mulsum(S: GpuStorage, G: GpuStorage, U: GpuStorage, nb: number): void {
    this.run('fftConv.mulsum', MULSUM, { X: S, Xr: G, Ur: U }, { nb }, this.e * this.n);
  }

  /** Real parts / n of rows nb·e into the (nb, lz, e) view `t` (rows l..lz-1 of each sequence zero). */
  unpack(Xr: GpuStorage, t: Tensor, nb: number, lz: number): void {
    this.run(
      'fftConv.unpack',
      UNPACK,
      { Xr, dst: this.bk.buf(t) },
      { nb, lz, off: t.offset, ld: t.ld, scale: 1 / this.n },
      nb * lz * this.e,
    );
  }

  /** The filter's spectrum (first l taps of K). */
  spectrum(K: Tensor): GpuStorage {
    const a = this.take(this.e),
      b = this.take(this.e);
    this.pack(K, 1, a);
    return this.fft(this.e, a, b, false);
  }

  release(): void {
    for (const s of this.owned) this.bk.release(s);
  }
}

/** y = the causal convolution of u (b, l, e) with K (lk >= l, e) per channel. */
export function fftConv(bk: KernelHost, y: Tensor, u: Tensor, K: Tensor, b: number, l: number, e: number): void {
  if (b * l * e === 0) return;
  const f = new FftConv(bk, b, l, e);
  const KF = f.spectrum(K);
  const A = f.take(b * e),
    B = f.take(b * e);
  f.pack(u, b, A);
  const U = f.fft(b * e, A, B, false);
  f.mul(U, KF, b, false);
  const other = U === A ? B : A;
  f.unpack(f.fft(b * e, U, other, true), y, b, l);
  f.release();
}

/** du = the correlation of g with K; dK = sum over sequences of the correlation of g with u (rows >= l zero). */
export function fftConvBackward(
  bk: KernelHost,
  du: Tensor,
  dK: Tensor,
  g: Tensor,
  u: Tensor,
  K: Tensor,
  b: number,
  l: number,
  e: number,
  lk: number,
): void {
  if (e === 0) return;
  if (b * l === 0) {
    // no output touches a tap: dK is zero (du is empty)
    const f0 = new FftConv(bk, 1, 0, e);
    const Z = f0.take(e);
    f0.unpack(Z, dK, 1, lk);
    f0.release();
    return;
  }
  const f = new FftConv(bk, b, l, e);
  const KF = f.spectrum(K);
  const A = f.take(b * e),
    B = f.take(b * e),
    C = f.take(b * e),
    D = f.take(b * e);
  f.pack(g, b, A);
  const G = f.fft(b * e, A, B, false);
  f.pack(u, b, C);
  const U = f.fft(b * e, C, D, false);
  // dK: sum_b G_b conj(U_b), back to taps
  const S = f.take(e),
    S2 = f.take(e);
  f.mulsum(S, G, U, b);
  f.unpack(f.fft(e, S, S2, true), dK, 1, lk);
  // du: G conj(KF), back
  f.mul(G, KF, b, true);
  f.unpack(f.fft(b * e, G, G === A ? B : A, true), du, b, l);
  f.release();
}
