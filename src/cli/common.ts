import type { Backend } from '../backend/backend.js';
import { cliDownloadProgress } from '../io/hub.js';
import type { Model } from '../model.js';
import type { WeightDType } from '../models/weights.js';
import { BACKENDS, createBackend } from '../node/backends.js';
import { DEFAULT_MODEL_DIR, loadModel } from '../node/load.js';
import { num, oneOf, type Options } from './args.js';

/** Options every model-loading command takes. */
export const MODEL_OPTIONS: Options = {
  model: { type: 'string', short: 'm' },
  backend: { type: 'string' },
  dtype: { type: 'string' },
  threads: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

export const MODEL_HELP = `  --model, -m <dir|org/name[@rev]>  checkpoint directory or Hugging Face hub id (downloaded into the
                                    HF cache; HF_ENDPOINT, HF_HOME, HF_TOKEN, HF_HUB_OFFLINE honoured).
                                    Default: the small model shipped with mamba-ts
  --backend <cpu|webgpu>            where to compute (default cpu)
  --dtype <auto|f32|f16|bf16|q8|q4> how to hold the big weight matrices (default f32; auto keeps 16-bit
                                    checkpoints 16-bit; q8: 8-bit blocks of 32 with a scale, like Q8_0;
                                    q4: 4-bit blocks of 32 with an f16 scale, like Q4_0)
  --threads <n>                     CPU threads (default: all cores, at most 8)`;

/** --backend and --threads (CPU threads default to createBackend's: all cores, at most 8). */
export async function backendFromArgs(v: Record<string, unknown>): Promise<Backend> {
  const threads = num(v.threads, 'threads', { int: true, min: 1, max: 256 });
  return createBackend(oneOf(v.backend, 'backend', BACKENDS, 'cpu'), threads === undefined ? {} : { threads });
}

export async function openModel(v: Record<string, unknown>): Promise<{ model: Model; backend: Backend }> {
  const dtype = oneOf<WeightDType>(v.dtype, 'dtype', ['auto', 'f32', 'f16', 'bf16', 'q8', 'q4'], 'f32');
  const backend = await backendFromArgs(v);
  const progress = cliDownloadProgress();
  try {
    const model = await loadModel(typeof v.model === 'string' ? v.model : DEFAULT_MODEL_DIR, {
      backend,
      dtype,
      onProgress: progress.onProgress,
    });
    return { model, backend };
  } finally {
    progress.stop();
  }
}
