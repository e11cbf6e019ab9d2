import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import * as F from '../ops/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { SequenceCore } from './core.js';
import { parameterMap, type Mixer, type MixerState } from './mixer.js';

/**
 * The "no gate" block of the paper's Table 1: the sequence core between two projections with a
 * pointwise nonlinearity, the standard S4 layer without its GLU:
 *   u = in_proj(x) (b, l, e);  y = core(u);  out = out_proj(gelu(y)) (b, l, d)
 * With the S4D core this is "S4, no gate"; with S6, "S6, no gate".
 */
export interface PlainWeights {
  inProj: Tensor; // (e, d)
  outProj: Tensor; // (d, e)
}

interface StepWorkspace {
  u: Tensor;
  y: Tensor;
  act: Tensor;
}

export class PlainMixer implements Mixer {
  readonly kind: string;
  private readonly workspaces = new Map<number, StepWorkspace>();

  constructor(
    readonly backend: Backend,
    readonly w: PlainWeights,
    readonly core: SequenceCore,
  ) {
    this.kind = `${core.kind}-plain`;
    if (w.inProj.rows !== core.channels || w.outProj.cols !== core.channels)
      fail(
        'SHAPE_MISMATCH',
        `plain block: in_proj ${w.inProj.rows} and out_proj ${w.outProj.cols} channels must equal the core's ${core.channels}`,
      );
  }

  forward(x: Tensor, state?: MixerState): Tensor {
    const u = F.linear(x, this.w.inProj);
    const y = this.core.forward(u, state);
    return F.linear(F.unary('gelu', y), this.w.outProj);
  }

  step(x: Tensor, out: Tensor, state: MixerState): void {
    const b = x.rows,
      e = this.core.channels;
    let ws = this.workspaces.get(b);
    if (!ws) {
      const bk = this.backend;
      ws = { u: bk.alloc([b, 1, e]).keep(), y: bk.alloc([b, 1, e]).keep(), act: bk.alloc([b, 1, e]).keep() };
      this.workspaces.set(b, ws);
    }
    const bk = this.backend;
    bk.matmul(ws.u, x, this.w.inProj, { transB: true });
    this.core.step(ws.u, ws.y, state);
    bk.unary('gelu', ws.act, ws.y);
    bk.matmul(out, ws.act, this.w.outProj, { transB: true });
  }

  initState(batch: number): MixerState {
    return this.core.initState(batch);
  }
  stateShapes(): Record<string, readonly number[]> {
    return this.core.stateShapes();
  }

  parameters(): Map<string, Tensor> {
    return parameterMap(
      [
        ['in_proj.weight', this.w.inProj],
        ['out_proj.weight', this.w.outProj],
      ],
      { core: this.core },
    );
  }

  parametersChanged(): void {
    this.core.parametersChanged();
  }
}
