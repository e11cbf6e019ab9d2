import type { Tensor } from '../tensor/tensor.js';
import type { MixerState } from './mixer.js';

/**
 * The sequence-mixing layer inside a block, on e channels: S6 (selective), S4D (diagonal LTI SSM),
 * Hyena's implicit long convolution. Block architectures (plain.ts: no gate; gated.ts: the Mamba
 * block; h3.ts) wrap a core with projections and gates, so "Mamba + S4D" is the Mamba block around
 * the S4D core (the paper's Table 1 ablation).
 *
 *   forward(u (b, l, e)) -> y (b, l, e)     parallel form; with a state: continue from it, leave the new one
 *   step(u (b, 1, e), y (b, 1, e), state)   one token, in place, allocation-free after warm-up
 */
export interface SequenceCore {
  readonly kind: string;
  readonly channels: number;
  forward(u: Tensor, state?: MixerState): Tensor;
  step(u: Tensor, y: Tensor, state: MixerState): void;
  /** State tensors for `batch` sequences (their names must not clash with the block's own). */
  initState(batch: number): MixerState;
  stateShapes(): Record<string, readonly number[]>;
  parameters(): Map<string, Tensor>;
  parametersChanged(): void;
}
