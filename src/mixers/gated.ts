import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import * as F from '../ops/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { SequenceCore } from './core.js';
import { parameterMap, type Mixer, type MixerState } from './mixer.js';

/**
 * The Mamba block around any sequence core (Mamba Fig. 3; the "Mamba" architecture rows of Table 1):
 *   xz = in_proj(x) -> u, z (e each);  u = silu(conv1d(u));  y = core(u) · silu(z);  out = out_proj(y)
 * With the S6 core this computes what MambaMixer does (which fuses the gate into the scan; a test
 * checks they agree); with the S4D core it is "Mamba + S4", with the Hyena filter "Mamba + Hyena".
 * State: conv (b, e, k) plus the core's.
 */
export interface GatedWeights {
  inProj: Tensor; // (2e, d)
  convWeight: Tensor; // (e, k)
  convBias: Tensor; // (e)
  outProj: Tensor; // (d, e)
}

interface StepWorkspace {
  xz: Tensor;
  u: Tensor;
  z: Tensor;
  uc: Tensor;
  y: Tensor;
  gate: Tensor;
}

export class GatedMixer implements Mixer {
  readonly kind: string;
  private readonly workspaces = new Map<number, StepWorkspace>();

  constructor(
    readonly backend: Backend,
    readonly w: GatedWeights,
    readonly core: SequenceCore,
  ) {
    this.kind = `mamba+${core.kind}`;
    const e = core.channels;
    if (w.inProj.rows !== 2 * e || w.convWeight.rows !== e || w.outProj.cols !== e)
      fail(
        'SHAPE_MISMATCH',
        `gated block: in_proj (${w.inProj.rows} rows), conv (${w.convWeight.rows}) and out_proj (${w.outProj.cols} cols) must fit the core's ${e} channels (2e, e, e)`,
      );
    if ('conv' in core.stateShapes())
      fail('BAD_ARGUMENT', 'gated block: the core\'s state must not use the name "conv"');
  }

  forward(x: Tensor, state?: MixerState): Tensor {
    const e = this.core.channels;
    const xz = F.linear(x, this.w.inProj);
    const uc = F.causalConv1d(xz.narrow(0, e), this.w.convWeight, this.w.convBias, true, state?.conv ?? null);
    const y = this.core.forward(uc, state);
    return F.linear(F.mul(y, F.unary('silu', xz.narrow(e, e))), this.w.outProj);
  }

  step(x: Tensor, out: Tensor, state: MixerState): void {
    const b = x.rows,
      e = this.core.channels;
    const conv = state.conv ?? fail('STATE_MISMATCH', 'gated block: state must hold "conv"');
    let ws = this.workspaces.get(b);
    if (!ws) {
      const bk = this.backend;
      const xz = bk.alloc([b, 1, 2 * e]).keep();
      ws = {
        xz,
        u: xz.narrow(0, e),
        z: xz.narrow(e, e),
        uc: bk.alloc([b, 1, e]).keep(),
        y: bk.alloc([b, 1, e]).keep(),
        gate: bk.alloc([b, 1, e]).keep(),
      };
      this.workspaces.set(b, ws);
    }
    const bk = this.backend;
    bk.matmul(ws.xz, x, this.w.inProj, { transB: true });
    bk.causalConv1d(ws.uc, ws.u, this.w.convWeight, this.w.convBias, conv, true);
    this.core.step(ws.uc, ws.y, state);
    bk.unary('silu', ws.gate, ws.z);
    bk.binary('mul', ws.y, ws.y, ws.gate);
    bk.matmul(out, ws.y, this.w.outProj, { transB: true });
  }

  initState(batch: number): MixerState {
    return {
      conv: this.backend.zeros([batch, this.core.channels, this.w.convWeight.cols]).keep(),
      ...this.core.initState(batch),
    };
  }

  stateShapes(): Record<string, readonly number[]> {
    return { conv: [1, this.core.channels, this.w.convWeight.cols], ...this.core.stateShapes() };
  }

  parameters(): Map<string, Tensor> {
    return parameterMap(
      [
        ['in_proj.weight', this.w.inProj],
        ['conv1d.weight', this.w.convWeight],
        ['conv1d.bias', this.w.convBias],
        ['out_proj.weight', this.w.outProj],
      ],
      { core: this.core },
    );
  }

  parametersChanged(): void {
    this.core.parametersChanged();
  }
}
