import { fail, fmtShape } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import * as F from '../ops/ops.js';
import * as SSD from '../ops/ssd.js';
import { needsGrad, type Tensor } from '../tensor/tensor.js';
import { parameterMap, type Mixer, type MixerState } from './mixer.js';

/**
 * Mamba-2's mixer, SSD (Dao & Gu 2024; REFERENCE.md §2; transformers' Mamba2Mixer, mamba_ssm's Mamba2).
 *
 * Glossary: b batch, l length, d d_model, e d_inner = h·p, h heads, p head_dim, g n_groups, n d_state,
 * k d_conv, c = e + 2·g·n conv channels, W = 2e + 2gn + h in_proj rows.
 *   zxbcdt = in_proj(x)                          (b, l, W) -> z (e), xBC (c), dt (h)
 *   xBC    = silu(conv1d(xBC))                   (b, l, c) causal depthwise, width k -> x (e), B (gn), C (gn)
 *   y      = ssd(x, dt, A = -exp(A_log), B, C, D, dt_bias, softplus, time_step_limit)   (b, l, e)
 *   y      = gated_rmsnorm(y, z)                 rmsnorm(y · silu(z)) · w, or rmsnorm(y) · w · silu(z);
 *                                                without a norm weight y · silu(z) (Falcon-H1's mamba_rms_norm false)
 *   out    = out_proj(y)                         (b, l, d)
 * State per sequence: conv (c, k) = the last k inputs of the conv; ssm (h, p, n).
 *
 * time_step_limit clamps dt in the parallel form only: transformers' and mamba_ssm's recurrent steps
 * (`selective_state_update`) take no dt limit, and generation runs prefill in parallel, then steps.
 * `step` follows them, so with a finite limit that dt reaches, step and forward differ (by the clamp).
 */
export interface Mamba2MixerWeights {
  inProj: Tensor; // (W, d)
  inProjBias: Tensor | null; // (W)
  convWeight: Tensor; // (c, k)
  convBias: Tensor | null; // (c)
  dtBias: Tensor; // (h)
  ALog: Tensor; // (h)
  D: Tensor; // (h)
  normWeight: Tensor | null; // (e); null: no norm, y · silu(z)
  outProj: Tensor; // (d, e)
  outProjBias: Tensor | null; // (d)
}

export interface Mamba2Dims {
  d: number;
  h: number;
  p: number;
  g: number;
  n: number;
  k: number;
  chunkSize: number;
  timeStepLimit: readonly [number, number];
  normEps: number;
  normGroupSize: number;
  normBeforeGate: boolean;
}

/** The reference steps' dt: softplus only (see the class comment). */
const NO_LIMIT = [-Infinity, Infinity] as const;

/** Buffers of the recurrent step for one batch size, made once and reused for every token. */
interface StepWorkspace {
  zxbcdt: Tensor; // (b, W)
  z: Tensor; // (b, e) view
  xBC3: Tensor; // (b, 1, c) view
  dt3: Tensor; // (b, 1, h) view
  xBCc: Tensor; // (b, 1, c) conv output
  x3: Tensor; // (b, 1, e) view
  B3: Tensor; // (b, 1, gn) view
  C3: Tensor; // (b, 1, gn) view
  y: Tensor; // (b, 1, e)
  y2: Tensor; // (b, e) view
  yn: Tensor; // (b, e) gated norm's output
  gate: Tensor | null; // (b, e) silu(z), without a norm
  /** The conv output where blockStep's fused in_proj leaves it, in place in zxbcdt: x, B, C (b, 1, ·) views. */
  inPlace: { x3: Tensor; B3: Tensor; C3: Tensor };
}

/** What Mamba-2's parallel pass hands a tracer (src/inspect/): the SSD scan's inputs. */
export interface Mamba2Activations {
  x: Tensor; // (b, l, e) = (b, l, h·p) the scan's input, after conv + SiLU
  dt: Tensor; // (b, l, h) one Δ per head, before dt_bias, softplus and time_step_limit
  B: Tensor; // (b, l, g·n)
  C: Tensor; // (b, l, g·n)
  A: Tensor; // (h) one scalar per head
}

export class Mamba2Mixer implements Mixer {
  readonly kind = 'mamba2';
  /** Set only while tracing (as MambaMixer.onActivations): one null check on the parallel path otherwise. */
  onActivations: ((a: Mamba2Activations) => void) | null = null;
  private A: Tensor | undefined; // (h) = -exp(A_log), derived
  private readonly workspaces = new Map<number, StepWorkspace>();
  /** e = h·p. */
  readonly e: number;
  /** c = e + 2·g·n. */
  readonly convDim: number;

  constructor(
    readonly backend: Backend,
    readonly w: Mamba2MixerWeights,
    readonly dims: Mamba2Dims,
  ) {
    this.e = dims.h * dims.p;
    this.convDim = this.e + 2 * dims.g * dims.n;
  }

  /** A = -exp(A_log), computed once (and again after `parametersChanged`); recorded while training. */
  private getA(): Tensor {
    if (needsGrad(this.w.ALog)) return F.unary('negexp', this.w.ALog);
    if (!this.A) this.A = F.unary('negexp', this.w.ALog).keep();
    return this.A;
  }

  parametersChanged(): void {
    this.A?.dispose();
    this.A = undefined;
  }

  private get normOpts(): { groupSize: number; eps: number; normBeforeGate: boolean } {
    return { groupSize: this.dims.normGroupSize, eps: this.dims.normEps, normBeforeGate: this.dims.normBeforeGate };
  }

  forward(x: Tensor, state?: MixerState): Tensor {
    const { d, g, n, h } = this.dims;
    const e = this.e,
      c = this.convDim;
    if (x.rank !== 3 || x.cols !== d)
      fail('SHAPE_MISMATCH', `mamba2 mixer: input must be (b, l, ${d}), got ${fmtShape(x.shape)}`);
    const zxbcdt = F.linear(x, this.w.inProj, this.w.inProjBias); // (b, l, W)
    const z = zxbcdt.narrow(0, e);
    const xBC = F.causalConv1d(zxbcdt.narrow(e, c), this.w.convWeight, this.w.convBias, true, state?.conv ?? null); // (b, l, c)
    if (this.onActivations)
      this.onActivations({
        x: xBC.narrow(0, e),
        dt: zxbcdt.narrow(e + c, h),
        B: xBC.narrow(e, g * n),
        C: xBC.narrow(e + g * n, g * n),
        A: this.getA(),
      });
    const y = SSD.ssdScan({
      x: xBC.narrow(0, e),
      dt: zxbcdt.narrow(e + c, h),
      A: this.getA(),
      B: xBC.narrow(e, g * n),
      C: xBC.narrow(e + g * n, g * n),
      D: this.w.D,
      dtBias: this.w.dtBias,
      dtSoftplus: true,
      dtLimit: this.dims.timeStepLimit,
      nGroups: g,
      chunkSize: this.dims.chunkSize,
      h0: state?.ssm ?? null,
      hOut: state?.ssm ?? null,
    }); // (b, l, e)
    const yn = this.w.normWeight
      ? SSD.gatedRmsnorm(y, z, this.w.normWeight, this.normOpts)
      : F.mul(y, F.unary('silu', z)); // (b, l, e)
    return F.linear(yn, this.w.outProj, this.w.outProjBias); // (b, l, d)
  }

  step(x: Tensor, out: Tensor, state: MixerState): void {
    const bk = this.backend;
    const ws = this.workspace(x.rows);
    const { conv, ssm } = state;
    if (!conv || !ssm) fail('STATE_MISMATCH', 'mamba2 mixer: state must hold "conv" and "ssm"');
    bk.matmul(ws.zxbcdt, x, this.w.inProj, { transB: true, bias: this.w.inProjBias });
    bk.causalConv1d(ws.xBCc, ws.xBC3, this.w.convWeight, this.w.convBias, conv, true);
    this.ssdStep(ws, ws.x3, ws.B3, ws.C3, ssm);
    if (this.w.normWeight) bk.gatedRmsnorm(ws.yn, ws.y2, ws.z, this.w.normWeight, this.normOpts);
    else if (bk.unaryMul)
      bk.unaryMul('silu', ws.yn, ws.z, ws.y2); // y ⊙ silu(z) in one pass
    else if (ws.gate) {
      bk.unary('silu', ws.gate, ws.z);
      bk.binary('mul', ws.yn, ws.y2, ws.gate);
    }
    bk.matmul(out, ws.yn, this.w.outProj, { transB: true, bias: this.w.outProjBias });
  }

  /**
   * The residual block in three launches where the backend fuses products (Mixer.blockStep): in_proj of
   * rmsnorm(residual) with the conv step on its xBC columns (in place: zxbcdt then holds [z, silu(conv(xBC)),
   * dt]), the SSD step, and out_proj of the gated norm (one group) added into the residual, scaled.
   */
  blockStep(residual: Tensor, norm: Tensor, eps: number, state: MixerState, scale = 1): boolean {
    if (!this.fusesBlock(residual.rows, state)) return false;
    this.blockRead(residual, norm, eps, state)(scale);
    return true;
  }

  /** Whether blockStep / blockRead fuse (the gated norm in one group, the backend fusing both products). */
  fusesBlock(rows: number, state: MixerState): boolean {
    const bk = this.backend;
    const nw = this.w.normWeight;
    const oneGroup = !nw || this.normOpts.groupSize === this.e;
    return (
      !!state.conv &&
      !!state.ssm &&
      oneGroup &&
      !!bk.fusedLinear &&
      !!bk.fusesLinear?.(rows, [this.w.inProj, this.w.outProj])
    );
  }

  /** blockStep's first two launches (they read the residual); returns its third (the write). */
  blockRead(residual: Tensor, norm: Tensor, eps: number, state: MixerState): (scale: number) => void {
    const bk = this.backend;
    const ws = this.workspace(residual.rows);
    bk.fusedLinear!({
      out: ws.zxbcdt,
      x: residual,
      weight: this.w.inProj,
      bias: this.w.inProjBias,
      norm: { weight: norm, eps },
      conv: { from: this.e, weight: this.w.convWeight, bias: this.w.convBias, state: state.conv },
    });
    this.ssdStep(ws, ws.inPlace.x3, ws.inPlace.B3, ws.inPlace.C3, state.ssm);
    const nw = this.w.normWeight;
    const opts = this.normOpts;
    return (scale) =>
      bk.fusedLinear!({
        out: residual,
        x: ws.y2,
        weight: this.w.outProj,
        bias: this.w.outProjBias,
        gate: { z: ws.z, weight: nw, eps: opts.eps, normBeforeGate: opts.normBeforeGate },
        accumulate: scale,
      });
  }

  /** One token of the SSD recurrence: y <- the scan step of x, dt, B, C (b, 1, ·) from the state ssm (advanced in place). */
  private ssdStep(ws: StepWorkspace, x: Tensor, B: Tensor, C: Tensor, ssm: Tensor): void {
    this.backend.ssdScan({
      y: ws.y,
      x,
      dt: ws.dt3,
      A: this.getA(),
      B,
      C,
      D: this.w.D,
      dtBias: this.w.dtBias,
      dtSoftplus: true,
      dtLimit: NO_LIMIT,
      nGroups: this.dims.g,
      chunkSize: 1,
      h0: ssm,
      hOut: ssm,
    });
  }

  private workspace(b: number): StepWorkspace {
    let ws = this.workspaces.get(b);
    if (!ws) {
      const { g, n, h } = this.dims;
      const e = this.e,
        c = this.convDim;
      const bk = this.backend;
      const zxbcdt = bk.alloc([b, 2 * e + 2 * g * n + h]).keep();
      const xBCc = bk.alloc([b, 1, c]).keep();
      const y = bk.alloc([b, 1, e]).keep();
      const yn = bk.alloc([b, e]).keep();
      const xBC3 = zxbcdt.narrow(e, c).reshape([b, 1, c]);
      ws = {
        zxbcdt,
        xBCc,
        y,
        yn,
        z: zxbcdt.narrow(0, e),
        xBC3,
        dt3: zxbcdt.narrow(e + c, h).reshape([b, 1, h]),
        x3: xBCc.narrow(0, e),
        B3: xBCc.narrow(e, g * n),
        C3: xBCc.narrow(e + g * n, g * n),
        y2: y.reshape([b, e]),
        gate: this.w.normWeight || bk.unaryMul ? null : bk.alloc([b, e]).keep(),
        inPlace: { x3: xBC3.narrow(0, e), B3: xBC3.narrow(e, g * n), C3: xBC3.narrow(e + g * n, g * n) },
      };
      this.workspaces.set(b, ws);
    }
    return ws;
  }

  initState(batch: number): MixerState {
    const { h, p, n, k } = this.dims;
    return {
      conv: this.backend.zeros([batch, this.convDim, k]).keep(),
      ssm: this.backend.zeros([batch, h, p, n]).keep(),
    };
  }

  stateShapes(): Record<string, readonly number[]> {
    const { h, p, n, k } = this.dims;
    return { conv: [1, this.convDim, k], ssm: [1, h, p, n] };
  }

  parameters(): Map<string, Tensor> {
    const w = this.w;
    return parameterMap([
      ['in_proj.weight', w.inProj],
      ['conv1d.weight', w.convWeight],
      ['dt_bias', w.dtBias],
      ['A_log', w.ALog],
      ['D', w.D],
      ['norm.weight', w.normWeight],
      ['out_proj.weight', w.outProj],
      ['in_proj.bias', w.inProjBias],
      ['conv1d.bias', w.convBias],
      ['out_proj.bias', w.outProjBias],
    ]);
  }

  /** Releases the step buffers (GPU memory). */
  dispose(): void {
    for (const ws of this.workspaces.values()) for (const t of [ws.zxbcdt, ws.xBCc, ws.y, ws.yn, ws.gate]) t?.dispose();
    this.workspaces.clear();
    this.parametersChanged();
  }
}
