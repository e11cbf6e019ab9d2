import { startPoolWorker } from './pool-worker.js';
import type { FromWorker, ToWorker } from './pool-protocol.js';

/** Entry of a pool worker in a browser (a module Web Worker); see pool-worker.ts. */
interface WorkerScope {
  postMessage(m: FromWorker): void;
  addEventListener(type: 'message', h: (e: { data: ToWorker }) => void): void;
  close(): void;
}
const scope = globalThis as unknown as WorkerScope;
startPoolWorker({
  post: (m) => scope.postMessage(m),
  onMessage: (h) => scope.addEventListener('message', (e) => h(e.data)),
  close: () => scope.close(),
});
