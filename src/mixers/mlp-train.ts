import * as F from '../ops/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { UnaryOp } from '../backend/contract/inference.js';

/** What the training form reads of an Mlp's weights (mlp.ts's MlpWeights). */
export interface MlpParts {
  up: Tensor; // (2I, d) fused [gate; up], or (I, d)
  gate: Tensor | null; // (I, d)
  down: Tensor; // (d, I)
  upBias: Tensor | null;
  gateBias: Tensor | null;
  downBias: Tensor | null;
}

/**
 * The differentiable form of the feed-forward (Mlp), for training, from recorded ops:
 *   swiglu:  down(silu(gate(x)) ⊙ up(x))    fused: [gate; up] = up(x) split in two halves (Granite)
 *   relu2:   down(relu(up(x))²)
 *   other:   down(act(up(x)))
 * `weights` may replace the Mlp's own (an expert whose projections are blocks of a stacked parameter).
 */
export function mlpForward(w: MlpParts, activation: 'swiglu' | 'relu2' | UnaryOp, x: Tensor): Tensor {
  const I = w.down.cols;
  const up = F.linear(x, w.up, w.upBias); // (.., 2I) fused or (.., I)
  let act: Tensor; // (.., I)
  switch (activation) {
    case 'swiglu':
      act = w.gate
        ? F.mul(F.unary('silu', F.linear(x, w.gate, w.gateBias)), up)
        : F.mul(F.unary('silu', up.narrow(0, I)), up.narrow(I, I));
      break;
    case 'relu2':
      act = F.unary('square', F.unary('relu', up));
      break;
    default:
      act = F.unary(activation, up);
  }
  return F.linear(act, w.down, w.downBias); // (.., d)
}
