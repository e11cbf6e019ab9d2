import type { FromWorker, ToWorker } from './pool-protocol.js';

/**
 * How the pool starts workers on this platform: Node's `worker_threads` (../wasm/thread-host-node.ts)
 * or browser Web Workers (../wasm/thread-host-web.ts), which live next to the worker entries they
 * start (pool-worker-node.ts, pool-worker-web.ts). The pool itself imports neither, so a browser
 * bundle pulls in nothing from `node:*`.
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
