import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import * as F from '../ops/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { parameterMap, type Mixer, type MixerState, type StepPosition } from './mixer.js';

/**
 * Mixers side by side on the same input, their outputs summed (Falcon-H1's decoder layer: Mamba-2 and
 * attention both read input_layernorm(h), h + mamba + attention):
 *   forward(x (b, l, d)) = Σ_i part_i.forward(x)        step(x (b, d)) = Σ_i part_i.step(x)
 * The parts share one MixerState record: each reads and replaces only its own keys (Mamba-2's conv and
 * ssm, attention's k, v and length, which it swaps for a larger cache as the context grows), so the
 * keys must not overlap. Parameters are named under each part's checkpoint prefix (`mamba.`, `self_attn.`).
 */
export class ParallelMixers implements Mixer {
  readonly kind: string;
  /** Each part's step output, per batch size: the first part writes into `out`, the others here. */
  private readonly scratch = new Map<number, Tensor[]>();

  constructor(
    readonly backend: Backend,
    /** The parts by their checkpoint prefix (without the dot), in the order their outputs are added. */
    readonly parts: Readonly<Record<string, Mixer>>,
  ) {
    const mixers = Object.values(parts);
    if (mixers.length < 2) fail('BAD_ARGUMENT', 'parallel mixers: need at least two parts');
    const seen = new Map<string, string>();
    for (const [name, m] of Object.entries(parts))
      for (const key of Object.keys(m.stateShapes())) {
        const other = seen.get(key);
        if (other !== undefined)
          fail('BAD_ARGUMENT', `parallel mixers: ${other} and ${name} both keep a state "${key}"`);
        seen.set(key, name);
      }
    this.kind = mixers.map((m) => m.kind).join('+');
  }

  forward(x: Tensor, state?: MixerState, position?: number): Tensor {
    let sum: Tensor | undefined;
    for (const m of Object.values(this.parts)) {
      const y = m.forward(x, state, position); // (b, l, d)
      sum = sum ? F.add(sum, y) : y;
    }
    return sum as Tensor;
  }

  step(x: Tensor, out: Tensor, state: MixerState, position?: StepPosition): void {
    const bk = this.backend;
    const mixers = Object.values(this.parts);
    let scratch = this.scratch.get(x.rows);
    if (!scratch) {
      scratch = mixers.slice(1).map(() => bk.alloc(out.shape).keep());
      this.scratch.set(x.rows, scratch);
    }
    mixers[0].step(x, out, state, position);
    for (let i = 1; i < mixers.length; i++) {
      // a part that can add its output into `out` itself saves the add (a dispatch per layer at decode)
      const m = mixers[i] as Mixer & { stepAdd?: Mixer['step'] };
      if (m.stepAdd) {
        m.stepAdd(x, out, state, position);
        continue;
      }
      m.step(x, scratch[i - 1], state, position);
      bk.binary('add', out, out, scratch[i - 1]);
    }
  }

  /**
   * The whole block fused where every part fuses (Mixer.blockRead): each part's launches that read
   * rmsnorm(residual) first, then each part's output added into the residual × scale (Falcon-H1 in f32:
   * 8 launches where the unfused step takes 11; test/webgpu/fused-blocks.test.ts counts them).
   */
  blockStep(
    residual: Tensor,
    norm: Tensor,
    eps: number,
    state: MixerState,
    scale = 1,
    position?: StepPosition,
  ): boolean {
    const parts = Object.values(this.parts);
    if (!parts.every((m) => m.blockRead && m.fusesBlock?.(residual.rows, state))) return false;
    const writes = parts.map((m) => m.blockRead!(residual, norm, eps, state, position));
    for (const write of writes) write(scale);
    return true;
  }

  initState(batch: number): MixerState {
    return Object.assign({}, ...Object.values(this.parts).map((m) => m.initState(batch))) as MixerState;
  }

  stateShapes(): Record<string, readonly number[]> {
    return Object.assign({}, ...Object.values(this.parts).map((m) => m.stateShapes())) as Record<
      string,
      readonly number[]
    >;
  }

  parameters(): Map<string, Tensor> {
    return parameterMap([], this.parts);
  }

  parametersChanged(): void {
    for (const m of Object.values(this.parts)) m.parametersChanged();
  }

  /** Releases the step buffers (and the parts' own, where they have any). */
  dispose(): void {
    for (const ts of this.scratch.values()) for (const t of ts) t.dispose();
    this.scratch.clear();
    for (const m of Object.values(this.parts)) (m as { dispose?: () => void }).dispose?.();
  }
}
