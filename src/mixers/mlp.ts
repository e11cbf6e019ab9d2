import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import { needsGrad, type Tensor } from '../tensor/tensor.js';
import { mlpForward } from './mlp-train.js';
import { parameterMap, type Mixer, type MixerState } from './mixer.js';

/**
 * The feed-forward block of hybrid language models, a stateless mixer (it mixes channels, not
 * positions), so a decoder layer's "mixer then MLP" is two blocks of the LanguageModel:
 *   swiglu:  out = down(silu(gate(x)) ⊙ up(x))     Llama, Bamba, Granite (fused: [gate; up] = input_linear(x))
 *   relu2:   out = down(relu(up(x))²)              Nemotron-H (non-gated)
 *   gelu / relu / silu: out = down(act(up(x)))     the plain MLP
 * The fused form keeps one (2I, d) matrix whose rows are [gate (I); up (I)] (Granite's input_linear).
 * Runs through `apply` with buffers per row count, so the step allocates nothing after warm-up.
 */
export type MlpActivation = 'swiglu' | 'relu2' | 'gelu' | 'relu' | 'silu';

export interface MlpWeights {
  /** (2I, d) with rows [gate; up] (fused), or (I, d) up projection. */
  up: Tensor;
  /** (I, d) separate gate projection (swiglu, not fused), else null. */
  gate: Tensor | null;
  down: Tensor; // (d, I)
  upBias: Tensor | null;
  gateBias: Tensor | null;
  downBias: Tensor | null;
  /**
   * A separate gate and up stacked in one storage, rows [gate; up] (2I, d), of which `gate` and `up` are
   * row views (models/stack-rows.ts): inference takes this one product, as the fused form does.
   */
  gateUp?: Tensor | null;
  /** [gateBias; upBias] (2I), of which the two biases are windows; with `gateUp` when biased. */
  gateUpBias?: Tensor | null;
}

export interface MlpNames {
  up: string;
  gate: string;
  down: string;
}

interface Workspace {
  up: Tensor; // (m, 2I) fused or stacked, or (m, I)
  gate: Tensor | null; // (m, I) separate gate, not stacked
  act: Tensor; // (m, I)
}

export class Mlp implements Mixer {
  readonly kind: string;
  /** I: the hidden width. */
  readonly hidden: number;
  private readonly workspaces = new Map<number, Workspace>();
  /** blockStep's [gate | up] (b, 2I) and its halves, where gate and up are separate matrices. */
  private readonly splitWorkspaces = new Map<number, { gu: Tensor; gate: Tensor; up: Tensor }>();

  constructor(
    readonly backend: Backend,
    readonly w: MlpWeights,
    readonly activation: MlpActivation,
    readonly names: MlpNames = { up: 'up_proj', gate: 'gate_proj', down: 'down_proj' },
  ) {
    this.kind = `mlp-${activation}`;
    this.hidden = w.down.cols;
    const I = this.hidden;
    const fused = activation === 'swiglu' && !w.gate;
    if (w.up.rows !== (fused ? 2 * I : I) || (w.gate && w.gate.rows !== I) || w.up.cols !== w.down.rows)
      fail('SHAPE_MISMATCH', `mlp: up ${w.up.shape}, gate ${w.gate?.shape ?? '-'}, down ${w.down.shape} do not fit`);
    if (w.gate && activation !== 'swiglu')
      fail('BAD_ARGUMENT', `mlp: a gate projection needs swiglu, not ${activation}`);
    if (w.gateUp && (!w.gate || w.gateUp.rows !== 2 * I || w.gateUp.cols !== w.up.cols))
      fail('SHAPE_MISMATCH', `mlp: the stacked [gate; up] ${w.gateUp.shape} does not fit a gate of ${I} rows`);
  }

  /** out (m, d) <- mlp(x (m, d)); x and out 2-D views of the same row count. */
  apply(x: Tensor, out: Tensor, ws: Workspace): void {
    const bk = this.backend;
    const I = this.hidden;
    const stacked = this.w.gateUp; // [gate; up] in one product, as the fused form
    if (stacked) bk.matmul(ws.up, x, stacked, { transB: true, bias: this.w.gateUpBias ?? null });
    else bk.matmul(ws.up, x, this.w.up, { transB: true, bias: this.w.upBias });
    switch (this.activation) {
      case 'swiglu': {
        let gate: Tensor, up: Tensor;
        if (ws.gate) {
          bk.matmul(ws.gate, x, this.w.gate!, { transB: true, bias: this.w.gateBias });
          gate = ws.gate;
          up = ws.up;
        } else {
          gate = ws.up.narrow(0, I);
          up = ws.up.narrow(I, I);
        }
        if (bk.unaryMul)
          bk.unaryMul('silu', ws.act, gate, up); // one pass where the backend fuses it
        else {
          bk.unary('silu', ws.act, gate);
          bk.binary('mul', ws.act, ws.act, up);
        }
        break;
      }
      case 'relu2':
        bk.unary('relu', ws.act, ws.up);
        bk.unary('square', ws.act, ws.act);
        break;
      default:
        bk.unary(this.activation, ws.act, ws.up);
    }
    bk.matmul(out, ws.act, this.w.down, { transB: true, bias: this.w.downBias });
  }

  /** Buffers for m rows: kept (the step's) or scoped (a forward's). */
  workspace(m: number, keep: boolean): Workspace {
    const cached = keep ? this.workspaces.get(m) : undefined;
    if (cached) return cached;
    const bk = this.backend;
    const k = (t: Tensor): Tensor => (keep ? t.keep() : t);
    const ws: Workspace = {
      up: k(bk.alloc([m, (this.w.gateUp ?? this.w.up).rows])),
      gate: this.w.gate && !this.w.gateUp ? k(bk.alloc([m, this.hidden])) : null,
      act: k(bk.alloc([m, this.hidden])),
    };
    if (keep) this.workspaces.set(m, ws);
    return ws;
  }

  forward(x: Tensor): Tensor {
    const w = this.w;
    if (needsGrad(x, w.up, w.gate, w.down, w.upBias, w.gateBias, w.downBias)) return mlpForward(w, this.activation, x); // training
    const m = x.rows;
    const out = this.backend.alloc(x.shape);
    this.apply(x.reshape([m, x.cols]), out.reshape([m, x.cols]), this.workspace(m, false));
    return out;
  }

  step(x: Tensor, out: Tensor, _state: MixerState): void {
    this.apply(x, out, this.workspace(x.rows, true));
  }

  /**
   * The residual block in fused products where the backend has them (Mixer.blockStep): [gate; up] of
   * rmsnorm(residual) (one product where they are one matrix, fused or stacked; else two, each with the
   * norm, into the halves of one buffer: q8/q4 weights are not stacked), then residual += scale ·
   * down(silu(gate) ⊙ up). SwiGLU only.
   */
  blockStep(residual: Tensor, norm: Tensor, eps: number, _state: MixerState, scale = 1): boolean {
    const bk = this.backend;
    const w = this.w;
    const gateUp = w.gateUp ?? (w.gate ? null : w.up);
    const b = residual.rows;
    const products = gateUp ? [gateUp, w.down] : [w.gate!, w.up, w.down];
    if (this.activation !== 'swiglu' || !bk.fusedLinear || !bk.fusesLinear?.(b, products)) return false;
    const nrm = { weight: norm, eps };
    let gu: Tensor;
    if (gateUp) {
      gu = this.workspace(b, true).up; // (b, 2I)
      const upBias = w.gateUp ? (w.gateUpBias ?? null) : w.upBias;
      bk.fusedLinear({ out: gu, x: residual, weight: gateUp, bias: upBias, norm: nrm });
    } else {
      let ws = this.splitWorkspaces.get(b);
      if (!ws) {
        const t = bk.alloc([b, 2 * this.hidden]).keep();
        ws = { gu: t, gate: t.narrow(0, this.hidden), up: t.narrow(this.hidden, this.hidden) };
        this.splitWorkspaces.set(b, ws);
      }
      gu = ws.gu;
      bk.fusedLinear({ out: ws.gate, x: residual, weight: w.gate!, bias: w.gateBias, norm: nrm });
      bk.fusedLinear({ out: ws.up, x: residual, weight: w.up, bias: w.upBias, norm: nrm });
    }
    bk.fusedLinear({ out: residual, x: gu, weight: w.down, bias: w.downBias, glu: true, accumulate: scale });
    return true;
  }

  initState(): MixerState {
    return {};
  }

  stateShapes(): Record<string, readonly number[]> {
    return {};
  }

  parameters(): Map<string, Tensor> {
    const { w, names: n } = this;
    return parameterMap([
      [`${n.up}.weight`, w.up],
      [`${n.gate}.weight`, w.gate],
      [`${n.down}.weight`, w.down],
      [`${n.up}.bias`, w.upBias],
      [`${n.gate}.bias`, w.gateBias],
      [`${n.down}.bias`, w.downBias],
    ]);
  }

  parametersChanged(): void {}

  dispose(): void {
    for (const ws of this.workspaces.values()) for (const t of [ws.up, ws.gate, ws.act]) t?.dispose();
    this.workspaces.clear();
    for (const ws of this.splitWorkspaces.values()) ws.gu.dispose();
    this.splitWorkspaces.clear();
  }
}
