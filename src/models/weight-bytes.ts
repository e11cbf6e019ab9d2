import { expectedMamba3Tensors } from './build-mamba3.js';
import { q4Layout } from '../backend/cpu/reference/q4.js';
import { q8Layout } from '../backend/cpu/reference/q8.js';
import { expectedMambaTensors } from './build-mamba.js';
import { expectedMamba2Tensors } from './build-mamba2.js';
import type { ModelConfig } from './config.js';
import type { ExpectedTensor, WeightDType } from './weights.js';

/**
 * The bytes a model's weights take in memory once loaded with a weight dtype, computed from the config
 * alone (nothing read or allocated): how big a model fits where. The big matrices take their format's
 * storage (q8 and q4 with their padding and scales, backend/cpu/reference/q8.ts and q4.ts), vectors
 * (norms, A_log, D, biases, conv) f32, as weights.ts loads them; a tied head takes nothing.
 * `checkpoint` is the stored dtype, which `auto` keeps.
 */
export function weightBytes(
  config: ModelConfig,
  dtype: WeightDType,
  checkpoint: 'f32' | 'f16' | 'bf16' = 'f32',
): number {
  const expected: ExpectedTensor[] =
    config.arch === 'mamba'
      ? expectedMambaTensors(config)
      : config.arch === 'mamba2'
        ? expectedMamba2Tensors(config)
        : expectedMamba3Tensors(config);
  const format = dtype === 'auto' ? checkpoint : dtype;
  let bytes = 0;
  for (const t of expected) {
    if (t.name === 'lm_head.weight' && config.tieEmbeddings) continue;
    const shape = t.holdShape ?? t.shape;
    const n = shape.reduce((a, b) => a * b, 1);
    const cols = shape[shape.length - 1] ?? 1;
    const rows = cols === 0 ? 0 : n / cols;
    if (!t.matrix || format === 'f32') bytes += 4 * n;
    else if (format === 'f16' || format === 'bf16') bytes += 2 * n;
    else if (format === 'q8') bytes += q8Layout(rows, cols).bytes;
    else bytes += q4Layout(rows, cols).bytes;
  }
  return bytes;
}
