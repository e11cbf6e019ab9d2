import type { Backend } from '../backend/backend.js';
import { requireKernel } from '../backend/contract/training.js';
import { fail } from '../errors.js';
import * as F from '../ops/ops.js';
import * as S from '../ops/sequence.js';
import { noGrad } from '../tensor/grad-mode.js';
import { needsGrad, type Tensor } from '../tensor/tensor.js';
import type { SequenceCore } from './core.js';
import { filled, linearBias, linearWeight, type Rng } from './init.js';
import { parameterMap, type Mixer, type MixerState } from './mixer.js';
import { readCounter, rowOfEach, rowsOf, writeCounter } from './rows.js';

/**
 * Hyena (Poli et al. 2023): long convolutions whose filters are implicit, a small network of the
 * position, and multiplicative gates.
 *
 * HyenaFilterCore, the implicit long convolution on e channels:
 *   z(t) = [t/T, cos(2π f_k t/T), sin(2π f_k t/T)]_k     positional features, f_k = linspace(1e-4, B−1, B),
 *                                                          T = the training length (`maxLength`)
 *   h(t) = W3 · gelu(W2 · gelu(W1 z(t) + b1) + b2)        the filter network (the paper's uses sin
 *                                                          activations; the backend contract has no sin, so
 *                                                          gelu here, with the high frequencies in z)
 *   K[t, c] = h(t)_c · exp(−α_c · t/T)                   exponential modulation, α_c = linspace(3.07, 15.35)
 *                                                          (decay to 1e-2 over 1.5 .. 0.3 of T, as Hyena's)
 *   y = fftConv(u, K) + D ⊙ u
 * There is no constant-size recurrent form: the step keeps every past input (state `history`
 * (b, cap, e) plus its `length`) and evaluates the convolution's newest output directly, O(t·e) per
 * token, like attention's KV cache.
 *
 * HyenaMixer, the order-2 Hyena operator (the paper's Algorithm 1 with N = 2):
 *   x0, x1, v = short_conv(in_proj(x)) (width 3, 3d channels);  y = x0 ⊙ core(x1 ⊙ v);  out = out_proj(y)
 */
export interface HyenaFilterWeights {
  w1: Tensor;
  b1: Tensor; // (order, features), (order)
  w2: Tensor;
  b2: Tensor; // (order, order), (order)
  w3: Tensor; // (e, order)
  D: Tensor; // (e)
}

export interface HyenaFilterDims {
  e: number;
  order: number;
  bands: number;
  maxLength: number;
  maxContext: number;
}

export function initHyenaFilter(bk: Backend, rng: Rng, dims: HyenaFilterDims): HyenaFilterWeights {
  const f = 2 * dims.bands + 1,
    o = dims.order;
  return {
    w1: linearWeight(bk, rng, o, f),
    b1: linearBias(bk, rng, o, f),
    w2: linearWeight(bk, rng, o, o),
    b2: linearBias(bk, rng, o, o),
    w3: linearWeight(bk, rng, dims.e, o),
    D: filled(bk, [dims.e], () => rng.normal()),
  };
}

interface StepWorkspace {
  prod: Tensor;
  sum: Tensor;
  du: Tensor;
}

export class HyenaFilterCore implements SequenceCore {
  readonly kind = 'hyena';
  readonly channels: number;
  private readonly consts = new Map<number, { z: Tensor; decay: Tensor }>();
  private kernelCache: Tensor | undefined;
  private reversed: Tensor | undefined; // (cap, e): K reversed in time, for the step
  private readonly workspaces = new Map<number, StepWorkspace>();

  constructor(
    readonly backend: Backend,
    readonly w: HyenaFilterWeights,
    readonly dims: HyenaFilterDims,
  ) {
    this.channels = dims.e;
    if (w.w1.cols !== 2 * dims.bands + 1 || w.w3.rows !== dims.e)
      fail(
        'SHAPE_MISMATCH',
        `Hyena filter: w1 must take ${2 * dims.bands + 1} features and w3 give ${dims.e} channels`,
      );
  }

  /** Positional features z (L, 2B + 1) and the modulation (L, e) for length L (constants). */
  private constants(L: number): { z: Tensor; decay: Tensor } {
    let c = this.consts.get(L);
    if (!c) {
      const { bands: B, maxLength: T, e } = this.dims;
      const nf = 2 * B + 1;
      const z = new Float32Array(L * nf),
        decay = new Float32Array(L * e);
      const fastest = -Math.log(1e-2) / 0.3,
        slowest = -Math.log(1e-2) / 1.5;
      for (let t = 0; t < L; t++) {
        z[t * nf] = t / T;
        for (let k = 0; k < B; k++) {
          const f = B === 1 ? 1e-4 : 1e-4 + ((B - 1 - 1e-4) * k) / (B - 1);
          z[t * nf + 1 + k] = Math.cos((2 * Math.PI * f * t) / T);
          z[t * nf + 1 + B + k] = Math.sin((2 * Math.PI * f * t) / T);
        }
        for (let ch = 0; ch < e; ch++) {
          const alpha = e === 1 ? slowest : slowest + ((fastest - slowest) * ch) / (e - 1);
          decay[t * e + ch] = Math.exp((-alpha * t) / T);
        }
      }
      c = { z: this.backend.upload(z, [L, nf]).keep(), decay: this.backend.upload(decay, [L, e]).keep() };
      if (this.consts.size > 4) {
        for (const old of this.consts.values()) {
          old.z.dispose();
          old.decay.dispose();
        }
        this.consts.clear();
      }
      this.consts.set(L, c);
    }
    return c;
  }

  private training(): boolean {
    const w = this.w;
    return needsGrad(w.w1, w.b1, w.w2, w.b2, w.w3);
  }

  /** The filter K (L, e); recorded while training, cached otherwise. */
  kernel(L: number): Tensor {
    const make = (): Tensor => {
      const { z, decay } = this.constants(L);
      const h1 = F.unary('gelu', F.linear(z, this.w.w1, this.w.b1));
      const h2 = F.unary('gelu', F.linear(h1, this.w.w2, this.w.b2));
      return F.mul(F.linear(h2, this.w.w3), decay);
    };
    if (this.training()) return make();
    if (!this.kernelCache || this.kernelCache.rows !== L) {
      this.kernelCache?.dispose();
      this.kernelCache = make().keep();
    }
    return this.kernelCache;
  }

  forward(u: Tensor, state?: MixerState): Tensor {
    const hist = state?.history;
    if (!hist) return F.add(S.fftConv(u, this.kernel(u.dim(1))), F.mul(u, this.w.D));
    // With a state: append the chunk to the history, convolve each sequence's whole history, keep the new rows.
    if (this.training() || needsGrad(u, this.w.D))
      fail(
        'UNSUPPORTED',
        'Hyena: gradients through a carried state are not supported; train on whole sequences without a state (or run under noGrad)',
      );
    const len = state.length ?? fail('STATE_MISMATCH', 'Hyena: state must hold "length"');
    return noGrad(() => {
      const [b, l] = u.shape as [number, number, number];
      const t0 = readCounter(len),
        cap = hist.dim(1);
      if (t0 + l > cap)
        fail(
          'STATE_MISMATCH',
          `Hyena: the input history holds ${cap} positions; ${t0} are used and ${l} more do not fit (build the mixer with a larger maxContext)`,
        );
      const bk = this.backend;
      const y = bk.alloc(u.shape);
      const K = this.kernel(t0 + l);
      for (let bi = 0; bi < b; bi++) {
        bk.copy(rowsOf(hist, bi, t0, l), rowsOf(u, bi, 0, l));
        const full = S.fftConv(rowsOf(hist, bi, 0, t0 + l), K);
        bk.copy(rowsOf(y, bi, 0, l), rowsOf(full, 0, t0, l));
      }
      writeCounter(len, t0 + l);
      return F.add(y, F.mul(u, this.w.D));
    });
  }

  step(u: Tensor, y: Tensor, state: MixerState): void {
    const hist = state.history ?? fail('STATE_MISMATCH', 'Hyena: state must hold "history"');
    const len = state.length ?? fail('STATE_MISMATCH', 'Hyena: state must hold "length"');
    const b = u.dim(0),
      e = this.channels,
      cap = hist.dim(1);
    const t = readCounter(len);
    if (t >= cap)
      fail(
        'STATE_MISMATCH',
        `Hyena: the input history is full (${cap} positions); build the mixer with a larger maxContext`,
      );
    const bk = this.backend;
    if (!this.reversed || this.reversed.rows !== cap) {
      // K reversed in time once: the newest output is sum_j Krev[cap−1−t+j] · u_j over j <= t.
      const K = this.kernel(cap);
      this.reversed?.dispose();
      this.reversed = bk.alloc([cap, e]).keep();
      for (let r = 0; r < cap; r++)
        bk.copy(rowsOf(this.reversed.reshape([1, cap, e]), 0, r, 1), rowsOf(K.reshape([1, cap, e]), 0, cap - 1 - r, 1));
    }
    let ws = this.workspaces.get(b);
    if (!ws) {
      ws = { prod: bk.alloc([1, cap, e]).keep(), sum: bk.alloc([1, 1, e]).keep(), du: bk.alloc([b, e]).keep() };
      this.workspaces.set(b, ws);
    }
    const u2 = u.reshape([b, e]);
    bk.copy(rowOfEach(hist, t), u2);
    const taps = rowsOf(this.reversed.reshape([1, cap, e]), 0, cap - 1 - t, t + 1);
    const y2 = y.reshape([b, e]);
    const reduce = requireKernel(bk, 'reduceRows');
    for (let bi = 0; bi < b; bi++) {
      const prod = rowsOf(ws.prod, 0, 0, t + 1);
      bk.binary('mul', prod, rowsOf(hist, bi, 0, t + 1), taps);
      reduce('sum', ws.sum, prod);
      bk.copy(rowsOf(y2.reshape([b, 1, e]), bi, 0, 1), ws.sum);
    }
    bk.binary('mul', ws.du, u2, this.w.D);
    bk.binary('add', y2, y2, ws.du);
    writeCounter(len, t + 1);
  }

  initState(batch: number): MixerState {
    return {
      history: this.backend.zeros([batch, this.dims.maxContext, this.channels]).keep(),
      length: this.backend.zeros([1]).keep(),
    };
  }

  stateShapes(): Record<string, readonly number[]> {
    return { history: [1, this.dims.maxContext, this.channels], length: [1] };
  }

  parameters(): Map<string, Tensor> {
    const w = this.w;
    return new Map([
      ['filter.w1', w.w1],
      ['filter.b1', w.b1],
      ['filter.w2', w.w2],
      ['filter.b2', w.b2],
      ['filter.w3', w.w3],
      ['D', w.D],
    ]);
  }

  parametersChanged(): void {
    this.kernelCache?.dispose();
    this.kernelCache = undefined;
    this.reversed?.dispose();
    this.reversed = undefined;
  }
}

export interface HyenaWeights {
  inProj: Tensor; // (3d, d)
  shortWeight: Tensor; // (3d, 3)
  shortBias: Tensor; // (3d)
  outProj: Tensor; // (d, d)
}

interface MixerWorkspace {
  xs: Tensor;
  xc: Tensor;
  x0: Tensor;
  x1: Tensor;
  v: Tensor;
  g: Tensor;
  y: Tensor;
}

export class HyenaMixer implements Mixer {
  readonly kind = 'hyena';
  private readonly workspaces = new Map<number, MixerWorkspace>();

  constructor(
    readonly backend: Backend,
    readonly w: HyenaWeights,
    readonly filter: HyenaFilterCore,
  ) {
    const d = filter.channels;
    if (w.inProj.rows !== 3 * d || w.shortWeight.rows !== 3 * d || w.outProj.rows !== d)
      fail('SHAPE_MISMATCH', `Hyena: in_proj and the short conv must have ${3 * d} channels, out_proj ${d}`);
  }

  forward(x: Tensor, state?: MixerState): Tensor {
    const d = this.filter.channels;
    const xc = F.causalConv1d(
      F.linear(x, this.w.inProj),
      this.w.shortWeight,
      this.w.shortBias,
      false,
      state?.short ?? null,
    );
    const v = this.filter.forward(F.mul(xc.narrow(d, d), xc.narrow(2 * d, d)), state);
    return F.linear(F.mul(v, xc.narrow(0, d)), this.w.outProj);
  }

  step(x: Tensor, out: Tensor, state: MixerState): void {
    const b = x.rows,
      d = this.filter.channels;
    const short = state.short ?? fail('STATE_MISMATCH', 'Hyena: state must hold "short"');
    let ws = this.workspaces.get(b);
    if (!ws) {
      const bk = this.backend;
      const xc = bk.alloc([b, 1, 3 * d]).keep();
      ws = {
        xs: bk.alloc([b, 1, 3 * d]).keep(),
        xc,
        x0: xc.narrow(0, d),
        x1: xc.narrow(d, d),
        v: xc.narrow(2 * d, d),
        g: bk.alloc([b, 1, d]).keep(),
        y: bk.alloc([b, 1, d]).keep(),
      };
      this.workspaces.set(b, ws);
    }
    const bk = this.backend;
    bk.matmul(ws.xs, x, this.w.inProj, { transB: true });
    bk.causalConv1d(ws.xc, ws.xs, this.w.shortWeight, this.w.shortBias, short, false);
    bk.binary('mul', ws.g, ws.x1, ws.v);
    this.filter.step(ws.g, ws.y, state);
    bk.binary('mul', ws.y, ws.y, ws.x0);
    bk.matmul(out, ws.y, this.w.outProj, { transB: true });
  }

  initState(batch: number): MixerState {
    return {
      short: this.backend.zeros([batch, 3 * this.filter.channels, this.w.shortWeight.cols]).keep(),
      ...this.filter.initState(batch),
    };
  }

  stateShapes(): Record<string, readonly number[]> {
    return { short: [1, 3 * this.filter.channels, this.w.shortWeight.cols], ...this.filter.stateShapes() };
  }

  parameters(): Map<string, Tensor> {
    return parameterMap(
      [
        ['in_proj.weight', this.w.inProj],
        ['short_conv.weight', this.w.shortWeight],
        ['short_conv.bias', this.w.shortBias],
        ['out_proj.weight', this.w.outProj],
      ],
      { filter_core: this.filter },
    );
  }

  parametersChanged(): void {
    this.filter.parametersChanged();
  }
}
