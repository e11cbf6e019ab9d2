import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import * as F from '../ops/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { parameterMap, type Mixer, type MixerState } from './mixer.js';
import type { S4DCore } from './s4d.js';

/**
 * H3, "Hungry Hungry Hippos" (Fu, Dao et al. 2023), head dimension 1:
 *   q, k, v = in_proj(x)                 (b, l, d) each
 *   k̃ = SSM_shift(k)                     the shift SSM: A shifts the state, B = e_1, so its output is a
 *                                        learned causal convolution over the last `shift` inputs (conv1d)
 *   y = q ⊙ SSM_diag(k̃ ⊙ v)              SSM_diag: the S4D core (diagonal, LTI)
 *   out = out_proj(y)
 * The multiplicative gates let it compare tokens (k̃ ⊙ v remembers v where the shifted key fired);
 * both SSMs are time-invariant. State: shift (b, d, k) as conv1d's, plus the S4D core's ssm.
 */
export interface H3Weights {
  inProj: Tensor; // (3d, d)
  shiftWeight: Tensor; // (d, k): the shift SSM's C (and D in its last tap)
  shiftBias: Tensor; // (d)
  outProj: Tensor; // (d, d)
}

interface StepWorkspace {
  qkv: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  ks: Tensor;
  kv: Tensor;
  y: Tensor;
}

export class H3Mixer implements Mixer {
  readonly kind = 'h3';
  private readonly workspaces = new Map<number, StepWorkspace>();

  constructor(
    readonly backend: Backend,
    readonly w: H3Weights,
    readonly ssm: S4DCore,
  ) {
    const d = ssm.channels;
    if (w.inProj.rows !== 3 * d || w.shiftWeight.rows !== d || w.outProj.rows !== d)
      fail(
        'SHAPE_MISMATCH',
        `H3: in_proj must be (${3 * d}, d), shift (${d}, k), out_proj (${d}, ${d}) for ${d} channels`,
      );
  }

  forward(x: Tensor, state?: MixerState): Tensor {
    const d = this.ssm.channels;
    const qkv = F.linear(x, this.w.inProj);
    const ks = F.causalConv1d(qkv.narrow(d, d), this.w.shiftWeight, this.w.shiftBias, false, state?.shift ?? null);
    const y = this.ssm.forward(F.mul(ks, qkv.narrow(2 * d, d)), state);
    return F.linear(F.mul(y, qkv.narrow(0, d)), this.w.outProj);
  }

  step(x: Tensor, out: Tensor, state: MixerState): void {
    const b = x.rows,
      d = this.ssm.channels;
    const shift = state.shift ?? fail('STATE_MISMATCH', 'H3: state must hold "shift"');
    let ws = this.workspaces.get(b);
    if (!ws) {
      const bk = this.backend;
      const qkv = bk.alloc([b, 1, 3 * d]).keep();
      ws = {
        qkv,
        q: qkv.narrow(0, d),
        k: qkv.narrow(d, d),
        v: qkv.narrow(2 * d, d),
        ks: bk.alloc([b, 1, d]).keep(),
        kv: bk.alloc([b, 1, d]).keep(),
        y: bk.alloc([b, 1, d]).keep(),
      };
      this.workspaces.set(b, ws);
    }
    const bk = this.backend;
    bk.matmul(ws.qkv, x, this.w.inProj, { transB: true });
    bk.causalConv1d(ws.ks, ws.k, this.w.shiftWeight, this.w.shiftBias, shift, false);
    bk.binary('mul', ws.kv, ws.ks, ws.v);
    this.ssm.step(ws.kv, ws.y, state);
    bk.binary('mul', ws.y, ws.y, ws.q);
    bk.matmul(out, ws.y, this.w.outProj, { transB: true });
  }

  initState(batch: number): MixerState {
    return {
      shift: this.backend.zeros([batch, this.ssm.channels, this.w.shiftWeight.cols]).keep(),
      ...this.ssm.initState(batch),
    };
  }

  stateShapes(): Record<string, readonly number[]> {
    return { shift: [1, this.ssm.channels, this.w.shiftWeight.cols], ...this.ssm.stateShapes() };
  }

  parameters(): Map<string, Tensor> {
    return parameterMap(
      [
        ['in_proj.weight', this.w.inProj],
        ['shift.weight', this.w.shiftWeight],
        ['shift.bias', this.w.shiftBias],
        ['out_proj.weight', this.w.outProj],
      ],
      { ssm: this.ssm },
    );
  }

  parametersChanged(): void {
    this.ssm.parametersChanged();
  }
}
