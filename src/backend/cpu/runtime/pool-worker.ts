import {
  claimChunk,
  DONE,
  ERROR,
  GEN,
  NEXT,
  OP,
  OP_ATTACH,
  OP_EXIT,
  SLEEPING,
  TOTAL,
  WAITING,
  type FromWorker,
  type ThreadOps,
  type ToWorker,
} from './pool-protocol.js';

/**
 * A pool worker, whatever the platform: the entries `pool-worker-node.ts` (worker_threads) and
 * `pool-worker-web.ts` (Web Workers, both in ../wasm/) pass their message port here, and the maker
 * of the thread's ops (`makeOps`, given the caller's `setup` and the thread id). After `init` the
 * worker stays in `serve`: it spins on the command counter for a while (commands come every few
 * microseconds during decode), then sleeps in Atomics.wait; it leaves the loop only to exit or to
 * receive a new arena's memory (OP_ATTACH), which arrives by postMessage and needs the event loop.
 */
export interface WorkerPort<S = unknown> {
  post(msg: FromWorker): void;
  onMessage(handler: (msg: ToWorker<S>) => void): void;
  close(): void;
}

export function startPoolWorker<S>(port: WorkerPort<S>, makeOps: (setup: S, tid: number) => ThreadOps): void {
  let ctl: Int32Array;
  let ctlF: Float32Array;
  let errText: Uint8Array;
  let spin = 0;
  let threads = 2;
  const span = new Int32Array(2);
  let seen = 0;
  let ops: ThreadOps;

  const serve = (): void => {
    for (;;) {
      let g = Atomics.load(ctl, GEN);
      if (g === seen) {
        for (let i = 0; i < spin && g === seen; i++) g = Atomics.load(ctl, GEN);
        if (g === seen) {
          Atomics.add(ctl, SLEEPING, 1);
          Atomics.wait(ctl, GEN, seen);
          Atomics.sub(ctl, SLEEPING, 1);
          continue;
        }
      }
      seen = g;
      const op = ctl[OP];
      if (op === OP_EXIT) {
        port.close();
        return;
      }
      if (op === OP_ATTACH) return; // the memory comes by message; `attach` below resumes serving
      try {
        while (claimChunk(ctl, threads, span)) ops.run(op, ctl, ctlF, span[0], span[1]);
      } catch (e) {
        // The first error's text goes to the shared buffer (the caller is blocked: a message would wait).
        if (Atomics.compareExchange(ctl, ERROR, 0, 1) === 0) {
          const bytes = new TextEncoder().encode(e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e));
          errText.set(bytes.subarray(0, errText.length - 1));
        }
        Atomics.store(ctl, NEXT, ctl[TOTAL]);
      }
      Atomics.add(ctl, DONE, 1);
      if (Atomics.load(ctl, WAITING)) Atomics.notify(ctl, DONE);
    }
  };

  port.onMessage((msg) => {
    if (msg.type === 'init') {
      ctl = new Int32Array(msg.ctl);
      ctlF = new Float32Array(msg.ctl);
      errText = new Uint8Array(msg.err);
      spin = msg.spin;
      threads = msg.threads;
      seen = Atomics.load(ctl, GEN);
      try {
        ops = makeOps(msg.setup, msg.tid);
        msg.memories.forEach((m, i) => ops.attach(i, m));
      } catch (e) {
        port.post({ type: 'error', message: e instanceof Error ? e.message : String(e) });
        return;
      }
      port.post({ type: 'ready' });
      serve();
    } else if (msg.type === 'attach') {
      ops.attach(msg.id, msg.memory);
      Atomics.add(ctl, DONE, 1);
      if (Atomics.load(ctl, WAITING)) Atomics.notify(ctl, DONE);
      serve();
    }
  });
}
