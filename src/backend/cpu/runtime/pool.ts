// Layer 2 of the CPU backend, runtime/: where kernels run. Tensor memory (arena.ts), the thread pool
// (this file, its command block pool-protocol.ts, the worker loop pool-worker.ts, late-waits.ts) and the
// ThreadHost contract. It knows no kernel: the layer above hands it a ThreadOps per thread. May import
// reference/, tensor/ and errors.ts; never wasm/ or the CpuBackend assembly.

import { fail } from '../../../errors.js';
import type { Arena, ArenaSet } from './arena.js';
import { LateWaits } from './late-waits.js';
import {
  ALIGN,
  ARGS,
  CHUNK,
  claimChunk,
  CTL_SLOTS,
  DONE,
  ERROR,
  ERROR_TEXT_BYTES,
  GEN,
  NEXT,
  OP,
  OP_ATTACH,
  OP_EXIT,
  SLEEPING,
  TOTAL,
  WAITING,
  type ThreadOps,
} from './pool-protocol.js';
import type { PoolThread, ThreadHost } from './thread-host.js';

/**
 * A persistent pool of worker threads for the CPU backend (Node worker_threads, or Web Workers in
 * cross-origin-isolated pages). Workers are started once; a command is written into a shared
 * block (pool-protocol.ts) and the calling thread works on it too, so `threads` counts the caller:
 * 2 threads = the caller + 1 worker. No message and no copy per command: operands are already in
 * the shared WebAssembly memories (arena.ts). Work is handed out in chunks by an atomic counter.
 * Synchronisation: workers spin on the command counter for `spin` polls before sleeping in
 * Atomics.wait, so back-to-back commands (a decode step issues ~150) cost a few hundred
 * nanoseconds each instead of a thread wake-up.
 *
 * On a machine busier than its cores (other processes), a worker can be descheduled while it holds
 * a chunk, and the caller then waits a whole scheduler slice (milliseconds) for it: a decode step
 * would cost more on two threads than on one. So the caller watches its waits: when a worker was
 * late (the wait exceeded three times the caller's own time per chunk, plus 1 ms) for a fifth of a
 * second's time, the pool runs the next 250 ms of commands on the calling thread alone, then
 * tries the workers again. A worker that was asleep when the command came is not late: its
 * wake-up is slow by nature, and counting it made the fallback feed itself (workers fall asleep
 * during the 250 ms alone, wake late when it ends, and trigger the next fallback); only a wake-up
 * that took more than ASLEEP_LATE_MS counts (an overloaded machine, where wake-ups wait for a core).
 */
export interface PoolOptions {
  /** Polls of the command counter before a worker sleeps (default 200000, roughly 0.1-1 ms). */
  spin?: number;
  /**
   * Multiply-adds from which a product is split over the pool (default MIN_SPLIT_PRODUCT); smaller
   * ones run on the calling thread alone. Tests lower it to split small products.
   */
  splitProductsFrom?: number;
}

/**
 * The default of `splitProductsFrom`. A command costs a few microseconds of hand-off, and each one
 * keeps the workers spinning (a core each) until the next: splitting even one small product per
 * recurrent step keeps them busy through the whole step and the server's work between steps. The
 * shipped model's step at batch 1 (products up to 128 x 2048 = 262144 multiply-adds, the LM head)
 * took 280 us on 2 threads against 190 us on 1 at the old bound of 32768 (its in_proj, out_proj and
 * LM head split), 316 against 276 with the LM head alone split (262144), and the same time and CPU
 * time on both from 524288 (nothing split at batch 1; from batch 2 its LM head splits; at batch 32,
 * 72 us a row against 94 on 1 thread). bench/step-threads.ts compares them.
 */
export const MIN_SPLIT_PRODUCT = 1 << 19;

/**
 * A wait for a worker that was asleep when the command came counts as late only beyond this (ms). A
 * wake-up takes tens of microseconds to a millisecond on a free core, so not counting wake-ups kept
 * the fallback from feeding itself (see the class comment); but on a machine with more runnable
 * threads than cores the workers fall asleep between most commands and each wake-up waits for a
 * core: measured at batch 32 on 2 threads, load 5 on 2 cores, a third of the commands found the
 * worker asleep, waits had a median of 2-5 ms, and 100 steps took 4-6 s with at most one fallback
 * (1.5 ms a row against 0.1-0.2 ms on one thread).
 */
const ASLEEP_LATE_MS = 5;

export class ThreadPool {
  readonly ctl: Int32Array;
  readonly ctlF: Float32Array;
  /** The first failing worker's message (workers write it here: the caller is blocked, messages would wait). */
  private readonly errText: Uint8Array;
  private closed = false;
  /** Commands run on the caller alone until this time (performance.now()), after late workers. */
  private serialUntil = 0;
  private readonly lateWaits = new LateWaits();
  /** Times the pool fell back to the calling thread (diagnostics, benchmarks). */
  fallbacks = 0;
  /** The caller's claimed chunk [j0, j1). */
  private readonly span = new Int32Array(2);
  /** Multiply-adds from which a product is split (PoolOptions.splitProductsFrom). */
  readonly splitProductsFrom: number;

  private constructor(
    readonly threads: number,
    private readonly workers: PoolThread[],
    sab: SharedArrayBuffer,
    err: SharedArrayBuffer,
    /** The calling thread's ops. */
    private readonly main: ThreadOps,
    private readonly canBlock: boolean,
    splitProductsFrom: number,
  ) {
    this.splitProductsFrom = splitProductsFrom;
    this.ctl = new Int32Array(sab);
    this.ctlF = new Float32Array(sab);
    this.errText = new Uint8Array(err);
  }

  /**
   * Starts `threads - 1` workers over the arenas' memories. `main` runs the calling thread's
   * chunks; each worker makes its own ops (its entry's maker) from `setup`, which is posted to it.
   */
  static async create(
    threads: number,
    host: ThreadHost,
    arenas: ArenaSet,
    main: ThreadOps,
    setup: unknown,
    o: PoolOptions = {},
  ): Promise<ThreadPool> {
    if (!Number.isInteger(threads) || threads < 2)
      fail('BAD_ARGUMENT', `a thread pool needs at least 2 threads, got ${threads}`);
    if (!arenas.shared)
      fail(
        'UNSUPPORTED',
        'threads need shared memory (SharedArrayBuffer): in a browser, serve the page cross-origin isolated (COOP/COEP headers); the CPU backend runs on one thread',
      );
    const sab = new SharedArrayBuffer(CTL_SLOTS * 4);
    const err = new SharedArrayBuffer(ERROR_TEXT_BYTES);
    const workers: PoolThread[] = [];
    const ready: Promise<void>[] = [];
    for (let tid = 1; tid < threads; tid++) {
      const w = host.spawn();
      workers.push(w);
      ready.push(
        new Promise<void>((resolve, reject) => {
          w.onMessage((m) => {
            if (m.type === 'ready') resolve();
            else if (m.type === 'error') reject(new Error(`pool worker ${tid}: ${m.message}`));
          });
          w.onError((e) => reject(e instanceof Error ? e : new Error(String(e))));
        }),
      );
      const memories = arenas.arenas.map((a) => a.memory);
      w.post({ type: 'init', ctl: sab, err, tid, memories, threads, spin: o.spin ?? 200000, setup });
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      for (const w of workers) w.terminate();
      return fail('UNSUPPORTED', `could not start ${threads - 1} pool worker(s): ${(e as Error).message}`);
    }
    return new ThreadPool(threads, workers, sab, err, main, host.canBlock, o.splitProductsFrom ?? MIN_SPLIT_PRODUCT);
  }

  /** Integer argument slot k of the command block. */
  setI(k: number, v: number): void {
    this.ctl[ARGS + k] = v;
  }

  /** Float argument slot k (stored as f32 bits). */
  setF(k: number, v: number): void {
    this.ctlF[ARGS + k] = v;
  }

  /**
   * Runs the command whose arguments are set: units [0, total) in chunks, on every thread. Chunks
   * are multiples of `align` units (except at the end) and at most `max`: the first claims take a
   * quarter of a thread's share, later ones shrink (claimChunk). Returns when all are done;
   * rethrows a worker's error.
   */
  run(op: number, total: number, align = 1, max = Infinity): void {
    if (this.closed) fail('BAD_ARGUMENT', 'the thread pool was closed');
    const c = this.ctl;
    const n = this.workers.length;
    const step = Math.max(align, Math.min(max, Math.ceil(total / (this.threads * 4) / align) * align));
    const compute = op !== OP_ATTACH && op !== OP_EXIT;
    if (compute && this.serialUntil !== 0) {
      if (performance.now() < this.serialUntil) {
        for (let j0 = 0; j0 < total; j0 += step) this.main.run(op, c, this.ctlF, j0, Math.min(total, j0 + step));
        return;
      }
      this.serialUntil = 0;
    }
    c[OP] = op;
    c[TOTAL] = total;
    c[CHUNK] = step;
    c[ALIGN] = align;
    Atomics.store(c, NEXT, 0);
    Atomics.store(c, DONE, 0);
    Atomics.add(c, GEN, 1);
    // a sleeping worker takes a wake-up (tens of microseconds to milliseconds) to join: not late
    const asleep = Atomics.load(c, SLEEPING) > 0;
    if (asleep) Atomics.notify(c, GEN);
    let err: unknown;
    let own = 0,
      ownChunks = 0;
    if (compute) {
      const t0 = performance.now();
      try {
        const span = this.span;
        while (claimChunk(c, this.threads, span)) {
          this.main.run(op, c, this.ctlF, span[0], span[1]);
          ownChunks++;
        }
      } catch (e) {
        err = e;
        Atomics.store(c, NEXT, total); // let the workers stop early
      }
      own = performance.now() - t0;
    }
    if (Atomics.load(c, DONE) < n) {
      const t1 = performance.now();
      this.waitDone(n);
      const waited = performance.now() - t1;
      // (a sleeping worker's wake-up is late only beyond ASLEEP_LATE_MS: see the class comment)
      const bound = (asleep ? ASLEEP_LATE_MS : 1) + 3 * (ownChunks ? own / ownChunks : own);
      if (compute && waited > bound && this.lateWaits.add(t1, waited)) {
        this.serialUntil = t1 + LateWaits.SERIAL_MS;
        this.fallbacks++;
      }
    }
    if (err) throw err;
    if (Atomics.load(c, ERROR)) {
      const len = this.errText.indexOf(0);
      const text = new TextDecoder().decode(this.errText.slice(0, len < 0 ? this.errText.length : len));
      this.errText.fill(0);
      Atomics.store(c, ERROR, 0);
      throw new Error(`a thread pool worker failed: ${text}`);
    }
  }

  private waitDone(n: number): void {
    const c = this.ctl;
    for (let i = 0; i < 1 << 20; i++) if (Atomics.load(c, DONE) >= n) return;
    if (!this.canBlock) {
      while (Atomics.load(c, DONE) < n) {
        /* the browser's main thread may not block */
      }
      return;
    }
    Atomics.store(c, WAITING, 1);
    for (;;) {
      const d = Atomics.load(c, DONE);
      if (d >= n) break;
      Atomics.wait(c, DONE, d, 1000);
    }
    Atomics.store(c, WAITING, 0);
  }

  /** Gives the workers a new arena's memory (called when an arena opens). */
  attach(a: Arena): void {
    for (const w of this.workers) w.post({ type: 'attach', id: a.id, memory: a.memory });
    this.run(OP_ATTACH, 0);
  }

  /** Stops the workers (they exit without reporting back: nothing to wait for). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const c = this.ctl;
    c[OP] = OP_EXIT;
    Atomics.add(c, GEN, 1);
    Atomics.notify(c, GEN);
    for (const w of this.workers) w.terminate();
  }
}
