import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { PoolThread, ThreadHost } from '../runtime/thread-host.js';
import type { FromWorker } from '../runtime/pool-protocol.js';

/** Pool workers as Node worker threads; unref'd, so idle workers never keep a process alive. */
export function createThreadHost(): ThreadHost {
  return {
    canBlock: true,
    cores: () => availableParallelism(),
    spawn(): PoolThread {
      const w = new Worker(new URL('./pool-worker-node.js', import.meta.url));
      w.unref();
      return {
        post: (m) => w.postMessage(m),
        onMessage: (h) => w.on('message', (m: FromWorker) => h(m)),
        onError: (h) => w.on('error', h),
        terminate: () => {
          void w.terminate();
        },
      };
    },
  };
}
