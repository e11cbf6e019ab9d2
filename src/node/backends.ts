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
    if (o.threads !== undefined) await setThreads(c, o.threads);
    return c;
  }
  if (name === 'webgpu') {
    // Dawn (the `webgpu` package) is imported only now, inside createNodeWebGpuBackend.
    return createNodeWebGpuBackend();
  }
  return fail('BAD_ARGUMENT', `unknown backend "${name}"; choose one of ${BACKENDS.join(', ')}`);
}

async function setThreads(c: ReturnType<typeof cpu>, n: number): Promise<void> {
  const pool = c as unknown as { useThreads?: (n: number) => Promise<void> | void };
  if (pool.useThreads) await pool.useThreads(n);
  else if (n > 1) fail('UNSUPPORTED', `--threads ${n}: this build of the CPU backend runs on one thread`);
}
