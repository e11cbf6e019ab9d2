import { instantiateKernels, setSimdLevel, type WasmKernels } from '../wasm/module.js';
import { runChunk, ViewCache, type ThreadContext } from './pool-ops.js';
import { claimChunk, DONE, ERROR, GEN, NEXT, OP, OP_ATTACH, OP_EXIT, SLEEPING, TOTAL, WAITING, type FromWorker, type ToWorker } from './pool-protocol.js';

/**
 * A pool worker, whatever the platform: `pool-worker-node.ts` (worker_threads) and
 * `pool-worker-web.ts` (Web Workers) pass their message port here. After `init` the worker stays
 * in `serve`: it spins on the command counter for a while (commands come every few microseconds
 * during decode), then sleeps in Atomics.wait; it leaves the loop only to exit or to receive a new
 * arena's memory (OP_ATTACH), which arrives by postMessage and needs the event loop.
 */
export interface WorkerPort {
  post(msg: FromWorker): void;
  onMessage(handler: (msg: ToWorker) => void): void;
  close(): void;
}

export function startPoolWorker(port: WorkerPort): void {
  let ctl: Int32Array;
  let ctlF: Float32Array;
  let errText: Uint8Array;
  let spin = 0;
  let threads = 2;
  const span = new Int32Array(2);
  let seen = 0;
  let wasm = false;
  const memories: (WebAssembly.Memory | undefined)[] = [];
  const kernels: (WasmKernels | undefined)[] = [];
  const views = new ViewCache(memories);
  let ctx: ThreadContext;

  const attach = (id: number, memory: WebAssembly.Memory): void => {
    memories[id] = memory;
    if (wasm) kernels[id] = instantiateKernels(memory, true);
  };

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
      const op = ctl[OP]!;
      if (op === OP_EXIT) { port.close(); return; }
      if (op === OP_ATTACH) return; // the memory comes by message; `attach` below resumes serving
      try {
        while (claimChunk(ctl, threads, span)) runChunk(ctx, op, ctl, ctlF, span[0]!, span[1]!);
      } catch (e) {
        // The first error's text goes to the shared buffer (the caller is blocked: a message would wait).
        if (Atomics.compareExchange(ctl, ERROR, 0, 1) === 0) {
          const bytes = new TextEncoder().encode(e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e));
          errText.set(bytes.subarray(0, errText.length - 1));
        }
        Atomics.store(ctl, NEXT, ctl[TOTAL]!);
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
      wasm = msg.wasm;
      seen = Atomics.load(ctl, GEN);
      try {
        setSimdLevel(msg.simd); // the caller's build: the same code on every thread
        msg.memories.forEach((m, i) => attach(i, m));
      } catch (e) {
        port.post({ type: 'error', message: e instanceof Error ? e.message : String(e) });
        return;
      }
      ctx = { tid: msg.tid, kernels, views: (id) => views.get(id) };
      port.post({ type: 'ready' });
      serve();
    } else if (msg.type === 'attach') {
      attach(msg.id, msg.memory);
      Atomics.add(ctl, DONE, 1);
      if (Atomics.load(ctl, WAITING)) Atomics.notify(ctl, DONE);
      serve();
    }
  });
}
