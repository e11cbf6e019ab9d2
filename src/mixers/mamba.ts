import { fail } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import type { MambaStepArgs } from '../backend/contract/decode.js';
import * as F from '../ops/ops.js';
import { needsGrad, type Tensor } from '../tensor/tensor.js';
import { parameterMap, type Mixer, type MixerState } from './mixer.js';

/**
 * Mamba-1's mixer, the selective SSM "S6" (Gu & Dao 2023, Algorithm 2; REFERENCE.md §1).
 *
 * Glossary: b batch, l length, d d_model, e d_inner, n d_state, k d_conv, r dt_rank.
 *   xz    = in_proj(x)                      (b, l, 2e) -> u = xz[..., :e], z = xz[..., e:]
 *   u     = silu(conv1d(u))                 (b, l, e)  causal depthwise, width k
 *   dbc   = x_proj(u)                       (b, l, r + 2n) -> dt_low (r), B (n), C (n)
 *   (Falcon-Mamba: dt_low, B and C each through a weightless RMSNorm here, eps `dtBCNormEps`; Jamba: the same
 *   norms with weights, `dtBCNormWeights`)
 *   delta = dt_proj.weight · dt_low         (b, l, e)  (its bias is added inside the scan)
 *   y     = selective_scan(u, delta, A = -exp(A_log), B, C, D, z, dt_proj.bias, softplus)
 *   out   = out_proj(y)                     (b, l, d)
 * State per sequence: conv (e, k) = the last k inputs of the conv; ssm (e, n) = h.
 */
export interface MambaMixerWeights {
  inProj: Tensor; // (2e, d)
  inProjBias: Tensor | null; // (2e)
  convWeight: Tensor; // (e, k)
  convBias: Tensor | null; // (e)
  xProj: Tensor; // (r + 2n, e)
  dtProj: Tensor; // (e, r)
  dtProjBias: Tensor; // (e)
  ALog: Tensor; // (e, n)
  D: Tensor; // (e)
  outProj: Tensor; // (d, e)
  outProjBias: Tensor | null; // (d)
  /** Weights of the Δ/B/C RMS norms where they have them (Jamba: dt_layernorm, b_layernorm, c_layernorm). */
  dtBCNormWeights?: { dt: Tensor; b: Tensor; c: Tensor } | undefined; // (r), (n), (n)
}

export interface MambaDims {
  d: number;
  e: number;
  n: number;
  k: number;
  r: number;
  /** eps of the RMS norms on dt_low, B and C (Falcon-Mamba's mixer_rms_eps, weightless; Jamba's, weighted); absent: none. */
  dtBCNormEps?: number | undefined;
}

/** Buffers of the recurrent step for one batch size, made once and reused for every token. */
interface StepWorkspace {
  xz: Tensor; // (b, 2e)
  u3: Tensor; // (b, 1, e) view of xz
  z3: Tensor; // (b, 1, e) view of xz
  uc: Tensor; // (b, 1, e)
  uc2: Tensor; // (b, e) view of uc
  dbc: Tensor; // (b, r + 2n)
  dbcNormed: Tensor | null; // (b, r + 2n), Falcon-Mamba's normed dbc
  dtLow: Tensor; // (b, r) view (of dbcNormed where there is one)
  B3: Tensor; // (b, 1, n) view
  C3: Tensor; // (b, 1, n) view
  delta: Tensor; // (b, 1, e)
  delta2: Tensor; // (b, e) view
  y: Tensor; // (b, 1, e)
  y2: Tensor; // (b, e) view
}

/** What the parallel path computed, handed to a tracer (inspect/trace.ts); views valid during the call only. */
export interface MambaActivations {
  u: Tensor; // (b, l, e) the scan's input, after conv + SiLU
  delta: Tensor; // (b, l, e) dt_proj · dt_low, before its bias and softplus
  B: Tensor; // (b, l, n)
  C: Tensor; // (b, l, n)
  A: Tensor; // (e, n)
}

export class MambaMixer implements Mixer {
  readonly kind = 'mamba';
  /** Set only while tracing: one null check on the parallel path otherwise. */
  onActivations: ((a: MambaActivations) => void) | null = null;
  private A: Tensor | undefined; // (e, n) = -exp(A_log), derived
  private readonly workspaces = new Map<number, StepWorkspace>();
  private ones: { dt: Tensor; b: Tensor; c: Tensor } | undefined; // the weightless norms' unit weights, (r), (n)

  constructor(
    readonly backend: Backend,
    readonly w: MambaMixerWeights,
    readonly dims: MambaDims,
  ) {}

  /**
   * A = -exp(A_log), computed once (and again after `parametersChanged`). While A_log is being
   * trained it is recomputed (and recorded) on every forward, so the gradient reaches A_log.
   */
  private getA(): Tensor {
    if (needsGrad(this.w.ALog)) return F.unary('negexp', this.w.ALog);
    if (!this.A) this.A = F.unary('negexp', this.w.ALog).keep();
    return this.A;
  }

  parametersChanged(): void {
    this.A?.dispose();
    this.A = undefined;
  }

  forward(x: Tensor, state?: MixerState): Tensor {
    const { e, n, r } = this.dims;
    if (x.rank !== 3 || x.cols !== this.dims.d)
      fail('SHAPE_MISMATCH', `mamba mixer: input must be (b, l, ${this.dims.d}), got (${x.shape.join(', ')})`);
    const xz = F.linear(x, this.w.inProj, this.w.inProjBias); // (b, l, 2e)
    const u = xz.narrow(0, e);
    const z = xz.narrow(e, e);
    const uc = F.causalConv1d(u, this.w.convWeight, this.w.convBias, true, state?.conv ?? null); // (b, l, e)
    const dbc = F.linear(uc, this.w.xProj); // (b, l, r + 2n)
    let dtLow = dbc.narrow(0, r),
      B = dbc.narrow(r, n),
      C = dbc.narrow(r + n, n);
    if (this.dims.dtBCNormEps !== undefined) {
      if (needsGrad(dbc)) {
        // training: each part through a recorded RMSNorm (the same as normDtBC's kernel)
        const w = this.dtBCNormWeights(),
          eps = this.dims.dtBCNormEps;
        [dtLow, B, C] = [F.rmsnorm(dtLow, w.dt, eps), F.rmsnorm(B, w.b, eps), F.rmsnorm(C, w.c, eps)];
      } else {
        const normed = this.backend.alloc(dbc.shape); // (b, l, r + 2n)
        this.normDtBC(normed, dbc);
        [dtLow, B, C] = [normed.narrow(0, r), normed.narrow(r, n), normed.narrow(r + n, n)];
      }
    }
    const delta = F.linear(dtLow, this.w.dtProj); // (b, l, e)
    if (this.onActivations) this.onActivations({ u: uc, delta, B, C, A: this.getA() });
    const y = F.selectiveScan({
      u: uc,
      delta,
      A: this.getA(),
      B,
      C,
      D: this.w.D,
      z,
      deltaBias: this.w.dtProjBias,
      deltaSoftplus: true,
      h0: state?.ssm ?? null,
      hOut: state?.ssm ?? null,
    }); // (b, l, e)
    return F.linear(y, this.w.outProj, this.w.outProjBias); // (b, l, d)
  }

  step(x: Tensor, out: Tensor, state: MixerState): void {
    const bk = this.backend;
    const ws = this.workspace(x.rows);
    const { conv, ssm } = state;
    if (!conv || !ssm) fail('STATE_MISMATCH', 'mamba mixer: state must hold "conv" and "ssm"');
    // The backend's fused step (same result as the composition below, which is its reference).
    if (bk.mambaStep?.(this.fusedArgs(x, out, conv, ssm, ws))) return;
    bk.matmul(ws.xz, x, this.w.inProj, { transB: true, bias: this.w.inProjBias });
    bk.causalConv1d(ws.uc, ws.u3, this.w.convWeight, this.w.convBias, conv, true);
    bk.matmul(ws.dbc, ws.uc2, this.w.xProj, { transB: true });
    if (ws.dbcNormed) this.normDtBC(ws.dbcNormed, ws.dbc);
    bk.matmul(ws.delta2, ws.dtLow, this.w.dtProj, { transB: true });
    bk.selectiveScan({
      y: ws.y,
      u: ws.uc,
      delta: ws.delta,
      A: this.getA(),
      B: ws.B3,
      C: ws.C3,
      D: this.w.D,
      z: ws.z3,
      deltaBias: this.w.dtProjBias,
      deltaSoftplus: true,
      h0: ssm,
      hOut: ssm,
    });
    bk.matmul(out, ws.y2, this.w.outProj, { transB: true, bias: this.w.outProjBias });
  }

  /** The block's norm and residual add fused into the backend's step, where it does that (Mixer.blockStep). */
  blockStep(residual: Tensor, norm: Tensor, eps: number, state: MixerState, scale = 1): boolean {
    const bk = this.backend;
    const { conv, ssm } = state;
    if (!bk.mambaStep || !conv || !ssm || scale !== 1) return false;
    return bk.mambaStep(
      this.fusedArgs(residual, residual, conv, ssm, this.workspace(residual.rows), { weight: norm, eps }),
    );
  }

  /**
   * out = [rms(dt_low)·w_dt, rms(B)·w_B, rms(C)·w_C] of dbc (rows of r + 2n), each part normalised over its own
   * width (the gated RMSNorm kernel without a gate); the weights are ones for Falcon-Mamba.
   */
  private normDtBC(out: Tensor, dbc: Tensor): void {
    const { n, r } = this.dims;
    const eps = this.dims.dtBCNormEps ?? 0;
    const bk = this.backend;
    const w = this.dtBCNormWeights();
    const opts = { eps, normBeforeGate: false };
    bk.gatedRmsnorm(out.narrow(0, r), dbc.narrow(0, r), null, w.dt, { ...opts, groupSize: r });
    bk.gatedRmsnorm(out.narrow(r, n), dbc.narrow(r, n), null, w.b, { ...opts, groupSize: n });
    bk.gatedRmsnorm(out.narrow(r + n, n), dbc.narrow(r + n, n), null, w.c, { ...opts, groupSize: n });
  }

  /** The Δ/B/C norms' weights: the checkpoint's (Jamba), or ones made once (Falcon-Mamba's weightless norms). */
  private dtBCNormWeights(): { dt: Tensor; b: Tensor; c: Tensor } {
    if (this.w.dtBCNormWeights) return this.w.dtBCNormWeights;
    if (!this.ones) {
      const { n, r } = this.dims;
      const ones = this.backend.upload(new Float32Array(n).fill(1), [n]).keep();
      this.ones = { dt: this.backend.upload(new Float32Array(r).fill(1), [r]).keep(), b: ones, c: ones };
    }
    return this.ones;
  }

  private fusedArgs(
    x: Tensor,
    out: Tensor,
    conv: Tensor,
    ssm: Tensor,
    ws: StepWorkspace,
    preNorm: MambaStepArgs['preNorm'] = null,
  ): MambaStepArgs {
    const w = this.w;
    return {
      x,
      out,
      preNorm,
      inProj: w.inProj,
      inProjBias: w.inProjBias,
      convWeight: w.convWeight,
      convBias: w.convBias,
      xProj: w.xProj,
      dtProj: w.dtProj,
      dtProjBias: w.dtProjBias,
      A: this.getA(),
      D: w.D,
      outProj: w.outProj,
      outProjBias: w.outProjBias,
      conv,
      ssm,
      xz: ws.xz,
      dbc: ws.dbc,
      y: ws.y2,
      dtRank: this.dims.r,
      dtBCNorm:
        this.dims.dtBCNormEps !== undefined && ws.dbcNormed
          ? { eps: this.dims.dtBCNormEps, ...this.dtBCNormWeights(), normed: ws.dbcNormed }
          : null,
    };
  }

  private workspace(b: number): StepWorkspace {
    let ws = this.workspaces.get(b);
    if (!ws) {
      const { e, n, r } = this.dims;
      const bk = this.backend;
      const xz = bk.alloc([b, 2 * e]).keep();
      const uc = bk.alloc([b, 1, e]).keep();
      const dbc = bk.alloc([b, r + 2 * n]).keep();
      const dbcNormed = this.dims.dtBCNormEps === undefined ? null : bk.alloc([b, r + 2 * n]).keep();
      const bcd = dbcNormed ?? dbc; // what dt_low, B and C are read from
      const delta = bk.alloc([b, 1, e]).keep();
      const y = bk.alloc([b, 1, e]).keep();
      ws = {
        xz,
        uc,
        dbc,
        dbcNormed,
        delta,
        y,
        u3: xz.narrow(0, e).reshape([b, 1, e]),
        z3: xz.narrow(e, e).reshape([b, 1, e]),
        uc2: uc.reshape([b, e]),
        dtLow: bcd.narrow(0, r),
        B3: bcd.narrow(r, n).reshape([b, 1, n]),
        C3: bcd.narrow(r + n, n).reshape([b, 1, n]),
        delta2: delta.reshape([b, e]),
        y2: y.reshape([b, e]),
      };
      this.workspaces.set(b, ws);
    }
    return ws;
  }

  initState(batch: number): MixerState {
    const { e, n, k } = this.dims;
    return { conv: this.backend.zeros([batch, e, k]).keep(), ssm: this.backend.zeros([batch, e, n]).keep() };
  }

  stateShapes(): Record<string, readonly number[]> {
    const { e, n, k } = this.dims;
    return { conv: [1, e, k], ssm: [1, e, n] };
  }

  parameters(): Map<string, Tensor> {
    const w = this.w;
    return parameterMap([
      ['in_proj.weight', w.inProj],
      ['conv1d.weight', w.convWeight],
      ['x_proj.weight', w.xProj],
      ['dt_proj.weight', w.dtProj],
      ['dt_proj.bias', w.dtProjBias],
      ['A_log', w.ALog],
      ['D', w.D],
      ['out_proj.weight', w.outProj],
      ['in_proj.bias', w.inProjBias],
      ['conv1d.bias', w.convBias],
      ['out_proj.bias', w.outProjBias],
      ['dt_layernorm.weight', w.dtBCNormWeights?.dt ?? null],
      ['b_layernorm.weight', w.dtBCNormWeights?.b ?? null],
      ['c_layernorm.weight', w.dtBCNormWeights?.c ?? null],
    ]);
  }

  /** Releases the step buffers (GPU memory). */
  dispose(): void {
    for (const ws of this.workspaces.values())
      for (const t of [ws.xz, ws.uc, ws.dbc, ws.dbcNormed, ws.delta, ws.y]) t?.dispose();
    this.workspaces.clear();
    this.ones?.dt.dispose();
    this.ones?.b.dispose(); // (c is the same tensor)
    this.ones = undefined;
    this.parametersChanged();
  }
}
