import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import * as F from '../ops/ops.js';
import { needsGrad, type Tensor } from '../tensor/tensor.js';
import type { SequenceCore } from './core.js';
import { filled, linearWeight, type Rng } from './init.js';
import type { MixerState } from './mixer.js';

/**
 * The selective SSM S6 as a core (Mamba §3; REFERENCE.md §1) without the Mamba block around it:
 *   dbc = x_proj(u) -> dt_low (r), B (n), C (n);  delta = dt_proj(dt_low)
 *   y = selective_scan(u, delta, A = −exp(A_log), B, C, D, dt_proj.bias, softplus)     (no z gate)
 * B, C and Δ depend on the input: the selection mechanism. The "S6, no gate" row of the paper's
 * Table 1 is the plain block (plain.ts) around this core; the Mamba block around it is MambaMixer.
 */
export interface S6Weights {
  xProj: Tensor; // (r + 2n, e)
  dtProj: Tensor; // (e, r)
  dtProjBias: Tensor; // (e)
  ALog: Tensor; // (e, n)
  D: Tensor; // (e)
}

/** Mamba's initialisation (REFERENCE.md §1): S4D-Real A, dt in [0.001, 0.1] through the softplus bias. */
export function initS6(bk: Backend, rng: Rng, e: number, n: number, r: number): S6Weights {
  const dtMin = 0.001,
    dtMax = 0.1;
  const std = r ** -0.5;
  return {
    xProj: linearWeight(bk, rng, r + 2 * n, e),
    dtProj: filled(bk, [e, r], () => rng.uniform(-std, std)),
    dtProjBias: filled(bk, [e], () => {
      const dt = Math.max(1e-4, Math.exp(rng.uniform(Math.log(dtMin), Math.log(dtMax))));
      return dt + Math.log(-Math.expm1(-dt)); // inverse softplus
    }),
    ALog: filled(bk, [e, n], (i) => Math.log((i % n) + 1)),
    D: filled(bk, [e], () => 1),
  };
}

/** What S6's parallel pass hands a tracer (src/inspect/): the selection's inputs, before the scan. */
export interface S6Activations {
  u: Tensor; // (b, l, e) the scan's input
  delta: Tensor; // (b, l, e) dt_proj · dt_low, before its bias and softplus
  B: Tensor; // (b, l, n)
  C: Tensor; // (b, l, n)
  A: Tensor; // (e, n)
}

interface StepWorkspace {
  dbc: Tensor;
  delta: Tensor;
}

export class S6Core implements SequenceCore {
  readonly kind = 's6';
  readonly channels: number;
  readonly n: number;
  readonly r: number;
  /** Set only while tracing (as MambaMixer.onActivations): one null check on the parallel path otherwise. */
  onActivations: ((a: S6Activations) => void) | null = null;
  private A: Tensor | undefined;
  private readonly workspaces = new Map<number, StepWorkspace>();

  constructor(
    readonly backend: Backend,
    readonly w: S6Weights,
  ) {
    this.channels = w.D.size;
    this.n = w.ALog.cols;
    this.r = w.dtProj.cols;
  }

  private getA(): Tensor {
    if (needsGrad(this.w.ALog)) return F.unary('negexp', this.w.ALog);
    this.A ??= F.unary('negexp', this.w.ALog).keep();
    return this.A;
  }

  forward(u: Tensor, state?: MixerState): Tensor {
    const { n, r } = this;
    const dbc = F.linear(u, this.w.xProj);
    const delta = F.linear(dbc.narrow(0, r), this.w.dtProj);
    if (this.onActivations)
      this.onActivations({ u, delta, B: dbc.narrow(r, n), C: dbc.narrow(r + n, n), A: this.getA() });
    return F.selectiveScan({
      u,
      delta,
      A: this.getA(),
      B: dbc.narrow(r, n),
      C: dbc.narrow(r + n, n),
      D: this.w.D,
      z: null,
      deltaBias: this.w.dtProjBias,
      deltaSoftplus: true,
      h0: state?.ssm ?? null,
      hOut: state?.ssm ?? null,
    });
  }

  step(u: Tensor, y: Tensor, state: MixerState): void {
    const { n, r } = this;
    const b = u.dim(0);
    const ssm = state.ssm ?? fail('STATE_MISMATCH', 'S6: state must hold "ssm"');
    let ws = this.workspaces.get(b);
    if (!ws) {
      ws = {
        dbc: this.backend.alloc([b, 1, r + 2 * n]).keep(),
        delta: this.backend.alloc([b, 1, this.channels]).keep(),
      };
      this.workspaces.set(b, ws);
    }
    const bk = this.backend;
    bk.matmul(ws.dbc, u, this.w.xProj, { transB: true });
    bk.matmul(ws.delta, ws.dbc.narrow(0, r), this.w.dtProj, { transB: true });
    bk.selectiveScan({
      y,
      u,
      delta: ws.delta,
      A: this.getA(),
      B: ws.dbc.narrow(r, n),
      C: ws.dbc.narrow(r + n, n),
      D: this.w.D,
      z: null,
      deltaBias: this.w.dtProjBias,
      deltaSoftplus: true,
      h0: ssm,
      hOut: ssm,
    });
  }

  initState(batch: number): MixerState {
    return { ssm: this.backend.zeros([batch, this.channels, this.n]).keep() };
  }

  stateShapes(): Record<string, readonly number[]> {
    return { ssm: [1, this.channels, this.n] };
  }

  parameters(): Map<string, Tensor> {
    const w = this.w;
    return new Map([
      ['x_proj.weight', w.xProj],
      ['dt_proj.weight', w.dtProj],
      ['dt_proj.bias', w.dtProjBias],
      ['A_log', w.ALog],
      ['D', w.D],
    ]);
  }

  parametersChanged(): void {
    this.A?.dispose();
    this.A = undefined;
  }
}
