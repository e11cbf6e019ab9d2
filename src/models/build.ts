import { fail } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import type { TensorSource } from '../io/tensor-source.js';
import { buildMamba } from './build-mamba.js';
import { buildMamba2 } from './build-mamba2.js';
import { buildMamba3 } from './build-mamba3.js';
import { parameterCount, type ModelConfig } from './config.js';
import type { LanguageModel } from './lm.js';
import type { WeightDType } from './weights.js';

/** Bytes per parameter of the narrowest weight dtype a checkpoint may store (F16, BF16). */
const MIN_BYTES_PER_PARAMETER = 2;

/**
 * Refuses a config that implies more parameters than the checkpoint can hold, before a tensor list
 * is built or a byte allocated: every parameter takes at least 2 bytes (F16/BF16), so a checkpoint
 * of B bytes holds at most B / 2 of them. The files' size is used when the source knows it (a view
 * repeated in a torch pickle cannot inflate it), else the sum of its tensors' sizes.
 */
export function checkParameterBytes(config: ModelConfig, tensors: TensorSource): void {
  const params = parameterCount(config);
  const need = params * MIN_BYTES_PER_PARAMETER;
  let have = tensors.storedBytes;
  if (have === undefined) {
    have = 0;
    for (const e of tensors.entries.values()) have += e.byteLength;
  }
  if (need > have) {
    const c = config;
    const dims = `d_model ${c.dModel}, ${c.nLayer} layers, d_inner ${c.dInner}, vocab ${c.vocabSize}`;
    fail(
      'CONFIG_MISMATCH',
      `${tensors.description} holds ${have} bytes, but the config (${dims}) implies ${params} ` +
        `parameters, at least ${need} bytes at ${MIN_BYTES_PER_PARAMETER} bytes each: config.json does not describe ` +
        'these weights',
      {
        parameters: params,
        expected: need,
        actual: have,
      },
    );
  }
}

/** Builds the model a config describes from checkpoint tensors, on a backend. */
export async function buildModel(
  config: ModelConfig,
  tensors: TensorSource,
  backend: Backend,
  dtype: WeightDType = 'f32',
): Promise<LanguageModel> {
  checkParameterBytes(config, tensors);
  switch (config.arch) {
    case 'mamba':
      return buildMamba(config, tensors, backend, dtype);
    case 'mamba2':
      return buildMamba2(config, tensors, backend, dtype);
    case 'mamba3':
      return buildMamba3(config, tensors, backend, dtype);
  }
}
