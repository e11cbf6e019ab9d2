import { availableParallelism } from 'node:os';
import { fail } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import { cpu } from '../backend/cpu/cpu-backend.js';
import { createNodeWebGpuBackend } from '../backend/webgpu/node.js';

export const BACKENDS = ['cpu', 'webgpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendOptions {
  /** CPU worker threads (default: all cores, at most 8). */
  threads?: number;
}

/** Creates (or returns the process-wide) backend by name. */
export async function createBackend(name: string, o: BackendOptions = {}): Promise<Backend> {
  if (name === 'cpu') {
    const c = cpu();
    await c.useThreads(o.threads ?? Math.min(8, availableParallelism()));
    return c;
  }
  if (name === 'webgpu') {
    // Dawn (the `webgpu` package) is imported only now, inside createNodeWebGpuBackend.
    return createNodeWebGpuBackend();
  }
  return fail('BAD_ARGUMENT', `unknown backend "${name}"; choose one of ${BACKENDS.join(', ')}`);
}
