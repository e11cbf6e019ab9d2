import { parentPort } from 'node:worker_threads';
import { startPoolWorker } from '../runtime/pool-worker.js';
import type { ToWorker } from '../runtime/pool-protocol.js';
import { workerThreadOps, type ThreadOpsSetup } from './thread-ops.js';

/** Entry of a pool worker under Node (`worker_threads`): the runtime's pool-worker.ts running thread-ops.ts. */
const port = parentPort;
if (!port) throw new Error('pool-worker-node.js must run as a worker thread');
startPoolWorker(
  {
    post: (m) => port.postMessage(m),
    onMessage: (h) => port.on('message', (m: ToWorker<ThreadOpsSetup>) => h(m)),
    close: () => port.close(),
  },
  workerThreadOps,
);
