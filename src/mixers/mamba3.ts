import { fail, fmtShape } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import type { Mamba3Dims, Mamba3ScanArgs, Mamba3State } from '../backend/contract/mamba3.js';
import { requireMixerKernel } from '../backend/contract/mixers.js';
import * as F from '../ops/ops.js';
import { mamba3Scan } from '../ops/mamba3.js';
import { needsGrad, type Tensor } from '../tensor/tensor.js';
import { parameterMap, type Mixer, type MixerState } from './mixer.js';

/**
 * Mamba-3's mixer (Lahoti et al. 2026; docs/mamba3.md; mamba_ssm's Mamba3 in modules/mamba3.py).
 *
 * Glossary: b batch, l length, d d_model, e d_inner = h·p, h heads, p headdim, n d_state, g ngroups,
 * R mimo_rank (1 for SISO), S rotation angles, W = 2e + 2·R·g·n + 3h + S in_proj rows.
 *   proj = in_proj(x)                          (b, l, W) -> z, x, B, C, dd_dt, dd_A, trap, angles
 *   y    = mamba3Scan(proj, ...)               (b, l, e) the SSM with its gate (backend/contract/mamba3.ts)
 *   out  = out_proj(y)                         (b, l, d)
 * No short convolution: the previous token reaches the state through the trapezoidal update instead.
 * State per sequence: theta (h, S), ssm (h, p, n), k (R, h, n) the last rotated B, x (h, p) the last x:
 * the official decode cache (angle_dt_state, ssm_state, k_state, v_state).
 *
 * Both forms run the same recurrence token by token (the scan); the parallel form differs only in
 * taking the whole sequence in one kernel call. Training differentiates the parallel form over whole
 * sequences (ops/mamba3.ts, the backward kernel mamba3ScanBackward).
 */
export interface Mamba3MixerWeights {
  inProj: Tensor; // (W, d)
  dtBias: Tensor; // (h)
  BBias: Tensor; // (h, R, n)
  CBias: Tensor; // (h, R, n)
  BNorm: Tensor; // (n)
  CNorm: Tensor; // (n)
  D: Tensor; // (h)
  mimoX: Tensor | null; // (h, R, p), MIMO only
  mimoZ: Tensor | null; // (h, R, p)
  mimoO: Tensor | null; // (h, R, p)
  normWeight: Tensor | null; // (e), with the output norm only
  outProj: Tensor; // (d, e)
}

/** Buffers of the recurrent step for one batch size, made once and reused for every token. */
interface StepWorkspace {
  proj: Tensor; // (b, W)
  proj3: Tensor; // (b, 1, W) view
  y: Tensor; // (b, 1, e)
  y2: Tensor; // (b, e) view
}

export class Mamba3Mixer implements Mixer {
  readonly kind = 'mamba3';
  private readonly workspaces = new Map<number, StepWorkspace>();
  /** e = h·p. */
  readonly e: number;
  /** W, in_proj rows. */
  readonly W: number;

  constructor(
    readonly backend: Backend,
    readonly w: Mamba3MixerWeights,
    readonly dims: Mamba3Dims & { d: number },
  ) {
    const { h, p, n, g, R, S } = dims;
    this.e = h * p;
    this.W = 2 * this.e + 2 * R * g * n + 3 * h + S;
  }

  private scan(y: Tensor, proj: Tensor, state: MixerState | undefined): void {
    const w = this.w;
    const { d: _d, ...dims } = this.dims;
    const args: Mamba3ScanArgs = {
      y,
      proj,
      dtBias: w.dtBias,
      BNorm: w.BNorm,
      CNorm: w.CNorm,
      BBias: w.BBias,
      CBias: w.CBias,
      D: w.D,
      mimoX: w.mimoX,
      mimoZ: w.mimoZ,
      mimoO: w.mimoO,
      normWeight: w.normWeight,
      state: state ? this.stateOf(state) : null,
      dims,
    };
    requireMixerKernel(this.backend, 'mamba3Scan')(args);
  }

  private stateOf(s: MixerState): Mamba3State {
    const { theta, ssm, k, x } = s;
    if (!theta || !ssm || !k || !x) fail('STATE_MISMATCH', 'mamba3 mixer: state must hold "theta", "ssm", "k" and "x"');
    return { theta, ssm, k, x };
  }

  forward(x: Tensor, state?: MixerState): Tensor {
    const { d } = this.dims;
    if (x.rank !== 3 || x.cols !== d)
      fail('SHAPE_MISMATCH', `mamba3 mixer: input must be (b, l, ${d}), got ${fmtShape(x.shape)}`);
    const proj = F.linear(x, this.w.inProj); // (b, l, W)
    if (needsGrad(proj, ...this.parameters().values())) {
      if (state)
        fail(
          'UNSUPPORTED',
          'mamba3 mixer: gradients through a carried state are not supported; train on whole sequences without a state',
        );
      const { d: _d, ...dims } = this.dims;
      return F.linear(mamba3Scan(proj, this.w, dims), this.w.outProj); // (b, l, d)
    }
    const [b, l] = x.shape as [number, number, number];
    const y = this.backend.alloc([b, l, this.e]); // (b, l, e)
    this.scan(y, proj, state);
    return F.linear(y, this.w.outProj); // (b, l, d)
  }

  step(x: Tensor, out: Tensor, state: MixerState): void {
    const ws = this.workspace(x.rows);
    this.backend.matmul(ws.proj, x, this.w.inProj, { transB: true });
    this.scan(ws.y, ws.proj3, state);
    this.backend.matmul(out, ws.y2, this.w.outProj, { transB: true });
  }

  private workspace(b: number): StepWorkspace {
    let ws = this.workspaces.get(b);
    if (!ws) {
      const bk = this.backend;
      const proj = bk.alloc([b, this.W]).keep();
      const y = bk.alloc([b, 1, this.e]).keep();
      ws = { proj, y, proj3: proj.reshape([b, 1, this.W]), y2: y.reshape([b, this.e]) };
      this.workspaces.set(b, ws);
    }
    return ws;
  }

  initState(batch: number): MixerState {
    const bk = this.backend;
    const { h, p, n, R, S } = this.dims;
    return {
      theta: bk.zeros([batch, h, S]).keep(),
      ssm: bk.zeros([batch, h, p, n]).keep(),
      k: bk.zeros([batch, R, h, n]).keep(),
      x: bk.zeros([batch, h, p]).keep(),
    };
  }

  stateShapes(): Record<string, readonly number[]> {
    const { h, p, n, R, S } = this.dims;
    return { theta: [1, h, S], ssm: [1, h, p, n], k: [1, R, h, n], x: [1, h, p] };
  }

  parameters(): Map<string, Tensor> {
    const w = this.w;
    return parameterMap([
      ['in_proj.weight', w.inProj],
      ['dt_bias', w.dtBias],
      ['B_bias', w.BBias],
      ['C_bias', w.CBias],
      ['B_norm.weight', w.BNorm],
      ['C_norm.weight', w.CNorm],
      ['mimo_x', w.mimoX],
      ['mimo_z', w.mimoZ],
      ['mimo_o', w.mimoO],
      ['D', w.D],
      ['norm.weight', w.normWeight],
      ['out_proj.weight', w.outProj],
    ]);
  }

  parametersChanged(): void {}

  /** Releases the step buffers. */
  dispose(): void {
    for (const ws of this.workspaces.values()) for (const t of [ws.proj, ws.y]) t.dispose();
    this.workspaces.clear();
  }
}
