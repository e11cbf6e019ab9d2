import type { Backend } from '../backend/backend.js';
import { cliDownloadProgress } from '../io/hub.js';
import type { Model } from '../model.js';
import type { WeightDType } from '../models/weights.js';
import { BACKENDS, createBackend, type BackendName } from '../node/backends.js';
import { DEFAULT_MODEL_DIR, loadModel } from '../node/load.js';
import type { OptionTable } from './args.js';

export const DTYPES = ['auto', 'f32', 'f16', 'bf16', 'q8', 'q4'] as const satisfies readonly WeightDType[];

/** --backend and --threads, shared by every command that computes. */
export const BACKEND_OPTIONS = {
  backend: { type: 'enum', values: BACKENDS, default: 'cpu', help: 'where to compute' },
  threads: { type: 'int', min: 1, max: 256, defaultText: 'all cores, at most 8', help: 'CPU threads' },
} as const satisfies OptionTable;

/** Options every model-loading command takes. */
export const MODEL_OPTIONS = {
  model: {
    type: 'string',
    short: 'm',
    arg: '<dir|org/name[@rev]>',
    nonEmpty: true,
    defaultText: 'the small model shipped with mamba-ts',
    help:
      'checkpoint directory or Hugging Face hub id (downloaded into the HF cache; HF_ENDPOINT, HF_HOME, HF_TOKEN, ' +
      'HF_HUB_OFFLINE honoured)',
  },
  ...BACKEND_OPTIONS,
  dtype: {
    type: 'enum',
    values: DTYPES,
    default: 'f32',
    help:
      'how to hold the big weight matrices (auto keeps 16-bit checkpoints 16-bit; q8: 8-bit blocks of 32 with a scale, ' +
      'like Q8_0; q4: 4-bit blocks of 32 with an f16 scale, like Q4_0)',
  },
} as const satisfies OptionTable;

/** --backend and --threads (CPU threads default to createBackend's: all cores, at most 8). */
export async function backendFromArgs(v: { backend: string; threads: number | undefined }): Promise<Backend> {
  return createBackend(v.backend as BackendName, v.threads === undefined ? {} : { threads: v.threads });
}

export async function openModel(v: {
  model: string | undefined;
  dtype: string;
  backend: string;
  threads: number | undefined;
}): Promise<{ model: Model; backend: Backend }> {
  const backend = await backendFromArgs(v);
  const progress = cliDownloadProgress();
  try {
    const model = await loadModel(v.model ?? DEFAULT_MODEL_DIR, {
      backend,
      dtype: v.dtype as WeightDType,
      onProgress: progress.onProgress,
    });
    return { model, backend };
  } finally {
    progress.stop();
  }
}
