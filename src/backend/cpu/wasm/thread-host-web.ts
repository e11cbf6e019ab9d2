import type { PoolThread, ThreadHost } from '../runtime/thread-host.js';
import type { FromWorker } from '../runtime/pool-protocol.js';

/**
 * Pool workers as module Web Workers. They share memory only in cross-origin-isolated pages
 * (SharedArrayBuffer); elsewhere the CPU backend stays on one thread. The page's main thread may
 * not block, so it spins while waiting for workers: run the model itself in a Web Worker.
 */
export function createThreadHost(): ThreadHost {
  const g = globalThis as unknown as { navigator?: { hardwareConcurrency?: number }; document?: unknown };
  return {
    canBlock: g.document === undefined,
    cores: () => g.navigator?.hardwareConcurrency ?? 1,
    spawn(): PoolThread {
      const w = new Worker(new URL('./pool-worker-web.js', import.meta.url), { type: 'module' });
      return {
        post: (m) => w.postMessage(m),
        onMessage: (h) => w.addEventListener('message', (e: MessageEvent<FromWorker>) => h(e.data)),
        onError: (h) => w.addEventListener('error', h),
        terminate: () => w.terminate(),
      };
    },
  };
}
