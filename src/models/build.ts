import type { Backend } from '../backend/backend.js';
import type { TensorSource } from '../io/tensor-source.js';
import { buildMamba } from './build-mamba.js';
import { buildMamba2 } from './build-mamba2.js';
import type { ModelConfig } from './config.js';
import type { LanguageModel } from './lm.js';
import type { WeightDType } from './weights.js';

/** Builds the model a config describes from checkpoint tensors, on a backend. */
export async function buildModel(config: ModelConfig, tensors: TensorSource, backend: Backend, dtype: WeightDType = 'f32'): Promise<LanguageModel> {
  switch (config.arch) {
    case 'mamba':
      return buildMamba(config, tensors, backend, dtype);
    case 'mamba2':
      return buildMamba2(config, tensors, backend, dtype);
  }
}
