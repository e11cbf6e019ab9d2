import type { FromWorker, ToWorker } from './pool-protocol.js';

/**
 * How the pool starts workers on this platform: Node's `worker_threads` (thread-host-node.ts) or
 * browser Web Workers (thread-host-web.ts). The pool itself imports neither, so a browser bundle
 * pulls in nothing from `node:*`.
 */
export interface PoolThread {
  post(msg: ToWorker): void;
  onMessage(h: (msg: FromWorker) => void): void;
  onError(h: (e: unknown) => void): void;
  terminate(): void;
}

export interface ThreadHost {
  /** Starts one worker running the pool worker entry. */
  spawn(): PoolThread;
  /** Hardware threads available. */
  cores(): number;
  /** Whether the calling thread may block in Atomics.wait (not a browser's main thread). */
  canBlock: boolean;
}

const isNode = typeof process !== 'undefined' && typeof process.versions === 'object' && !!process.versions.node;

/** The host for this platform (loaded on demand, so bundlers for the web need not resolve the Node one). */
export async function defaultThreadHost(): Promise<ThreadHost> {
  const spec = isNode ? './thread-host-node.js' : './thread-host-web.js';
  const mod = (await import(spec)) as { createThreadHost: () => ThreadHost };
  return mod.createThreadHost();
}
