import type { Backend } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * What the trainer needs of a model: named parameters and a parallel forward from token ids to logits.
 * `LanguageModel` fits it whatever its mixer (Mamba, and the mixers later built from the same ops), so
 * the trainer, evaluation and optimiser work for every architecture whose ops have backward passes.
 */
export interface TrainableModel {
  /** Every trainable parameter by a stable name (Hugging Face names for LanguageModel). */
  parameters(): Map<string, Tensor>;
  /** Called after the optimiser changes the parameters (drop cached derived values). */
  parametersChanged(): void;
  /** ids (b, l) i32 -> logits (b, l, V). */
  forward(ids: Tensor): Tensor;
  readonly vocabSize: number;
  readonly backend: Backend;
}
