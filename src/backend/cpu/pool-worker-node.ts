import { parentPort } from 'node:worker_threads';
import { startPoolWorker } from './pool-worker.js';
import type { ToWorker } from './pool-protocol.js';

/** Entry of a pool worker under Node (`worker_threads`); see pool-worker.ts. */
const port = parentPort;
if (!port) throw new Error('pool-worker-node.js must run as a worker thread');
startPoolWorker({
  post: (m) => port.postMessage(m),
  onMessage: (h) => port.on('message', (m: ToWorker) => h(m)),
  close: () => port.close(),
});
