import { fail, fmtShape } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import type { MixerState } from '../mixers/mixer.js';
import { sameShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * The recurrent state of a whole model for a batch of sequences: one MixerState per layer (for
 * Mamba, conv (b, e, k) and ssm (b, e, n)) and how many tokens each sequence has consumed.
 * It is a value: clone it to branch, serialise it to save a prompt's state and restore it later.
 * Its size does not depend on how many tokens it has seen.
 */
export class ModelState {
  constructor(
    readonly backend: Backend,
    readonly layers: MixerState[],
    readonly batch: number,
    /** Tokens consumed so far, the same for every row of the batch. */
    public position: number,
    /** Identifies the model shape the state belongs to (see LanguageModel.signature). */
    readonly signature: string,
  ) {}

  /** An independent copy. */
  clone(): ModelState {
    const layers = this.layers.map((l) => {
      const o: MixerState = {};
      for (const [k, t] of Object.entries(l)) {
        const c = this.backend.alloc(t.shape, t.dtype).keep();
        this.backend.copy(c, t);
        o[k] = c;
      }
      return o;
    });
    return new ModelState(this.backend, layers, this.batch, this.position, this.signature);
  }

  /** Copies another state's values into this one (same model and batch). */
  copyFrom(other: ModelState): void {
    this.assertCompatible(other);
    this.layers.forEach((l, i) => {
      for (const [k, t] of Object.entries(l)) this.backend.copy(t, other.layers[i][k]);
    });
    this.position = other.position;
  }

  assertCompatible(other: ModelState): void {
    if (other.signature !== this.signature) fail('STATE_MISMATCH', `state belongs to another model (${other.signature}), expected ${this.signature}`);
    if (other.batch !== this.batch) fail('STATE_MISMATCH', `state has batch ${other.batch}, expected ${this.batch}`);
  }

  /** All state tensors by name: `layers.{i}.{name}`. */
  tensors(): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    this.layers.forEach((l, i) => {
      for (const [k, t] of Object.entries(l)) m.set(`layers.${i}.${k}`, t);
    });
    return m;
  }

  /** Total bytes held (f32). */
  get bytes(): number {
    let n = 0;
    for (const t of this.tensors().values()) n += t.size * 4;
    return n;
  }

  dispose(): void {
    for (const t of this.tensors().values()) t.dispose();
  }

  /** Checks that a tensor loaded for `name` has the shape this state expects. */
  static checkTensor(name: string, expected: readonly number[], actual: readonly number[]): void {
    if (!sameShape(expected, actual)) fail('STATE_MISMATCH', `state tensor ${name} has shape ${fmtShape(actual)}, expected ${fmtShape(expected)}`);
  }
}
