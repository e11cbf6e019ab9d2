import { startPoolWorker } from '../runtime/pool-worker.js';
import type { FromWorker, ToWorker } from '../runtime/pool-protocol.js';
import { workerThreadOps, type ThreadOpsSetup } from './thread-ops.js';

/** Entry of a pool worker in a browser (a module Web Worker): the runtime's pool-worker.ts running thread-ops.ts. */
interface WorkerScope {
  postMessage(m: FromWorker): void;
  addEventListener(type: 'message', h: (e: { data: ToWorker<ThreadOpsSetup> }) => void): void;
  close(): void;
}
const scope = globalThis as unknown as WorkerScope;
startPoolWorker(
  {
    post: (m) => scope.postMessage(m),
    onMessage: (h) => scope.addEventListener('message', (e) => h(e.data)),
    close: () => scope.close(),
  },
  workerThreadOps,
);
