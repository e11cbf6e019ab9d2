import type { Tensor } from '../tensor/tensor.js';
import type { Mamba2Mixer } from './mamba2.js';
import type { Mixer, MixerState, StepPosition } from './mixer.js';
import type { SharedBlockCall } from './zamba2-shared-block.js';

/**
 * A Zamba2 hybrid layer: a call of a shared block, then the layer's Mamba-2 mixer (transformers'
 * Zamba2HybridLayer):
 *   t = call(h, e0)                          (b, l, d)   zamba2-shared-block.ts
 *   h = h + mamba(rmsnorm(h + t))            the residual is h, without t
 * As a Mixer it is the Mamba-2 part (`forward`/`step` take rmsnorm(h + t)); the language model
 * (models/zamba2-lm.ts) runs `shared`/`sharedStep` first, since only it holds h and e0. The state holds
 * both parts: the Mamba-2 `conv`, `ssm` and the call's KV cache `k`, `v`, `length`.
 */
export class Zamba2HybridLayer implements Mixer {
  readonly kind = 'zamba2-hybrid';

  constructor(
    readonly call: SharedBlockCall,
    readonly mamba: Mamba2Mixer,
    /** Checkpoint names of every tensor this layer owns (the shared block's only at its first call). */
    private readonly params: Map<string, Tensor>,
  ) {}

  /** t = the shared block's output for this layer, (b, l, d). */
  shared(h: Tensor, e0: Tensor, state?: MixerState, position?: number): Tensor {
    return this.call.forward(h, e0, state, position);
  }

  sharedStep(h: Tensor, e0: Tensor, out: Tensor, state: MixerState, position?: StepPosition): void {
    this.call.step(h, e0, out, state, position);
  }

  forward(x: Tensor, state?: MixerState): Tensor {
    return this.mamba.forward(x, state);
  }

  step(x: Tensor, out: Tensor, state: MixerState): void {
    this.mamba.step(x, out, state);
  }

  initState(batch: number): MixerState {
    return { ...this.mamba.initState(batch), ...this.call.initState(batch) };
  }

  stateShapes(): Record<string, readonly number[]> {
    return { ...this.mamba.stateShapes(), ...this.call.stateShapes() };
  }

  parameters(): Map<string, Tensor> {
    return new Map(this.params);
  }

  parametersChanged(): void {
    this.mamba.parametersChanged();
  }

  dispose(): void {
    this.call.dispose();
    this.mamba.dispose();
  }
}
