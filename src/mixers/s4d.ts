import type { Backend } from '../backend/backend.js';
import { requireMixerKernel } from '../backend/contract/mixers.js';
import { fail } from '../errors.js';
import * as F from '../ops/ops.js';
import * as S from '../ops/sequence.js';
import { needsGrad, type Tensor } from '../tensor/tensor.js';
import type { SequenceCore } from './core.js';
import { filled, type Rng } from './init.js';
import { parameterMap, type MixerState } from './mixer.js';

/**
 * S4D: the diagonal linear time-invariant SSM (Gu, Gupta, Goel, Ré 2022, "On the Parameterization and
 * Initialization of Diagonal State Space Models"), on e channels with N modes each:
 *   h'(t) = A h(t) + B u(t),  y(t) = Re(C h(t)) + D u(t),  discretised by zero-order hold with step dt
 *   A = −exp(A_log) + i·A_im,  dt = exp(log_dt),  B = 1 (folded into C)
 *
 * Convolution mode (training, prefill): K = ssmConvKernel(dt, A, C) (L, e), y = fftConv(u, K) + D·u
 *   (REFERENCE.md §4: K_l = Re(sum_n C_n (e^{dtA_n} − 1)/A_n e^{l·dtA_n}), ×2 for conjugate pairs).
 * Recurrent mode (generation, chunked prefill with a state): diagonalSsmScan, the complex state
 *   h_t = e^{dtA} h_{t−1} + (e^{dtA} − 1)/A · u_t, kept as (b, e, 2N) [Re, Im].
 * The two are equal (test/mixers/mixers.test.ts).
 *
 * Initialisations (n = the real state size per channel):
 *   'lin'  S4D-Lin: N = n/2 complex modes A_n = −1/2 + iπn, each standing for a conjugate pair (scale 2);
 *          C ~ CN(0, 1)
 *   'real' S4D-Real: N = n real modes A_n = −(n + 1), A_im = C_im = 0 (scale 1); C ~ N(0, 1)
 *   log_dt ~ U(log 0.001, log 0.1); D ~ N(0, 1)  (the S4D paper's standalone layer)
 * A is time-invariant: unlike S6, nothing depends on the input, which is what the selective copying
 * task exposes.
 */
export type S4DInit = 'lin' | 'real';

export interface S4DWeights {
  logDt: Tensor; // (e)
  ALog: Tensor; // (e, N): Re A = −exp(A_log)
  AIm: Tensor | null; // (e, N); null for S4D-Real
  CRe: Tensor; // (e, N)
  CIm: Tensor | null; // (e, N); null for S4D-Real
  D: Tensor; // (e)
}

export function initS4D(bk: Backend, rng: Rng, e: number, n: number, init: S4DInit): S4DWeights {
  if (init === 'lin' && n % 2 !== 0)
    fail('BAD_ARGUMENT', `S4D-Lin needs an even state size (conjugate pairs), got ${n}`);
  const N = init === 'lin' ? n / 2 : n;
  const lo = Math.log(0.001),
    hi = Math.log(0.1);
  return {
    logDt: filled(bk, [e], () => rng.uniform(lo, hi)),
    ALog: filled(bk, [e, N], (i) => (init === 'lin' ? Math.log(0.5) : Math.log((i % N) + 1))),
    AIm: init === 'lin' ? filled(bk, [e, N], (i) => Math.PI * (i % N)) : null,
    CRe: filled(bk, [e, N], () => rng.normal() * (init === 'lin' ? Math.SQRT1_2 : 1)),
    CIm: init === 'lin' ? filled(bk, [e, N], () => rng.normal() * Math.SQRT1_2) : null,
    D: filled(bk, [e], () => rng.normal()),
  };
}

export class S4DCore implements SequenceCore {
  readonly kind: string;
  readonly channels: number;
  readonly modes: number;
  private readonly scale: number;
  private derived: S.SsmTensors | undefined; // dt, A, C with zeros for the real variant (inference)
  private zeros: Tensor | undefined;
  private kernelCache: Tensor | undefined; // K of the last length used (inference)
  /**
   * Set only while tracing (src/inspect/): handed the core's input u (b, l, e) on every forward. The
   * rest of what a tracer needs (dt, A, C) are weights: S4D's step does not depend on the input.
   */
  onInput: ((u: Tensor) => void) | null = null;

  constructor(
    readonly backend: Backend,
    readonly w: S4DWeights,
  ) {
    this.channels = w.logDt.size;
    this.modes = w.ALog.cols;
    this.scale = w.AIm ? 2 : 1;
    this.kind = w.AIm ? 's4d-lin' : 's4d-real';
    if (!!w.AIm !== !!w.CIm)
      fail('BAD_ARGUMENT', 'S4D: A_im and C_im must both be given (S4D-Lin) or both be absent (S4D-Real)');
  }

  private training(): boolean {
    const w = this.w;
    return needsGrad(w.logDt, w.ALog, w.AIm, w.CRe, w.CIm);
  }

  /** dt, A and C as the kernels take them; recorded while training, cached otherwise. */
  private ssm(): S.SsmTensors {
    const w = this.w;
    const make = (): S.SsmTensors => {
      this.zeros ??= this.backend.zeros([this.channels, this.modes]).keep();
      return {
        dt: F.unary('exp', w.logDt),
        ARe: F.unary('negexp', w.ALog),
        AIm: w.AIm ?? this.zeros,
        CRe: w.CRe,
        CIm: w.CIm ?? this.zeros,
        scale: this.scale,
      };
    };
    if (this.training()) return make();
    if (!this.derived) {
      const d = make();
      d.dt.keep();
      d.ARe.keep();
      this.derived = d;
    }
    return this.derived;
  }

  /** The convolution kernel K (L, e) for sequences of length L. */
  kernel(L: number): Tensor {
    if (this.training()) return S.ssmConvKernel(this.ssm(), L);
    if (!this.kernelCache || this.kernelCache.rows !== L) {
      this.kernelCache?.dispose();
      this.kernelCache = S.ssmConvKernel(this.ssm(), L).keep();
    }
    return this.kernelCache;
  }

  forward(u: Tensor, state?: MixerState): Tensor {
    this.onInput?.(u);
    const st = state?.ssm;
    if (st) {
      // Recurrent mode over the whole chunk, continuing from the state (not differentiated).
      if (this.training() || needsGrad(u))
        fail(
          'UNSUPPORTED',
          'S4D: gradients through a carried state are not supported; train on whole sequences without a state (or run under noGrad)',
        );
      const y = this.backend.alloc(u.shape);
      requireMixerKernel(this.backend, 'diagonalSsmScan')({ y, u, D: this.w.D, state: st, ...this.ssm() });
      return y;
    }
    const y = S.fftConv(u, this.kernel(u.dim(1)));
    return F.add(y, F.mul(u, this.w.D));
  }

  step(u: Tensor, y: Tensor, state: MixerState): void {
    const st = state.ssm ?? fail('STATE_MISMATCH', 'S4D: state must hold "ssm"');
    requireMixerKernel(this.backend, 'diagonalSsmScan')({ y, u, D: this.w.D, state: st, ...this.ssm() });
  }

  initState(batch: number): MixerState {
    return { ssm: this.backend.zeros([batch, this.channels, 2 * this.modes]).keep() };
  }

  stateShapes(): Record<string, readonly number[]> {
    return { ssm: [1, this.channels, 2 * this.modes] };
  }

  parameters(): Map<string, Tensor> {
    const w = this.w;
    return parameterMap([
      ['log_dt', w.logDt],
      ['A_log', w.ALog],
      ['C_re', w.CRe],
      ['D', w.D],
      ['A_im', w.AIm ?? null],
      ['C_im', w.CIm ?? null],
    ]);
  }

  parametersChanged(): void {
    if (this.derived) {
      this.derived.dt.dispose();
      this.derived.ARe.dispose();
    }
    this.derived = undefined;
    this.kernelCache?.dispose();
    this.kernelCache = undefined;
  }
}
