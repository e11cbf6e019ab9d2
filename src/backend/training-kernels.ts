import { fail } from '../errors.js';
import type { Backend } from './backend.js';

/** The optional kernels of the contract that gradients and optimisers need. */
export type TrainingKernel =
  | 'reduceRows' | 'unaryBackward' | 'embeddingBackward' | 'rmsnormBackward' | 'causalConv1dBackward'
  | 'selectiveScanBackward' | 'crossEntropy' | 'crossEntropyBackward' | 'adamwStep';

/** The backend's kernel `k`, bound to it; UNSUPPORTED naming the kernel when the backend lacks it. */
export function requireKernel<K extends TrainingKernel>(bk: Backend, k: K): NonNullable<Backend[K]> {
  const f = bk[k] as ((...args: never[]) => void) | undefined;
  if (!f) fail('UNSUPPORTED', `the ${bk.name} backend has no ${k} kernel yet (needed for training and gradients); use the cpu backend`, { backend: bk.name, kernel: k });
  return f.bind(bk) as NonNullable<Backend[K]>;
}

/** Which training kernels a backend lacks (for messages and `info`). */
export function missingTrainingKernels(bk: Backend): TrainingKernel[] {
  const all: TrainingKernel[] = ['reduceRows', 'unaryBackward', 'embeddingBackward', 'rmsnormBackward', 'causalConv1dBackward', 'selectiveScanBackward', 'crossEntropy', 'crossEntropyBackward', 'adamwStep'];
  return all.filter((k) => typeof bk[k] !== 'function');
}
