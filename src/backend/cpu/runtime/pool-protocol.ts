/**
 * The thread pool's command block: one SharedArrayBuffer of 128 int32 slots, written by the calling
 * thread and read by the workers, so a command costs a few atomic operations and no message.
 *
 *   GEN      command counter: workers wait (spin, then Atomics.wait) for it to change
 *   OP       what to run (an OP_* below)
 *   NEXT     next unit to take: every thread (the caller too) claims chunks (claimChunk) until
 *            NEXT passes TOTAL, so a slow or descheduled thread delays at most one chunk
 *   CHUNK    the largest chunk; ALIGN: chunk sizes are multiples of it (except at TOTAL)
 *   DONE     workers finished with the current command (the caller waits for all of them)
 *   SLEEPING workers inside Atomics.wait (the caller notifies only when some are)
 *   WAITING  1 while the caller sleeps on DONE (workers notify only then)
 *   ERROR    set by a worker whose kernel threw (the message follows by postMessage)
 *   ARGS..   the op's arguments, int32 (floats as their f32 bits at the same slots)
 */
export const CTL_SLOTS = 128;
// Slots written while other threads poll sit on their own 64-byte cache lines.
export const GEN = 0;
export const OP = 1;
export const TOTAL = 2;
export const CHUNK = 3;
export const ALIGN = 4;
export const NEXT = 16;
export const DONE = 32;
export const SLEEPING = 48;
export const WAITING = 49;
export const ERROR = 50;
/** 64 argument slots. */
export const ARGS = 64;
/**
 * Claims the next chunk of the command in `ctl` for one of `threads` threads: writes [j0, j1) to
 * `out` and returns true, or returns false when none is left. Guided sizes: a share of what is
 * left (1 / (2 threads)), at most CHUNK, at least ALIGN, so chunks shrink toward the end and the
 * threads finish within a small chunk of each other. (Fixed chunks of an eighth left the caller
 * waiting half a chunk on average, 15-40 us per decode product on the 2-core machine.) Results do
 * not depend on the split: every unit (row, channel, column block) is computed alone.
 */
export function claimChunk(ctl: Int32Array, threads: number, out: Int32Array): boolean {
  const total = ctl[TOTAL],
    max = ctl[CHUNK],
    align = ctl[ALIGN];
  for (;;) {
    const j0 = Atomics.load(ctl, NEXT);
    if (j0 >= total) return false;
    let size = Math.ceil((total - j0) / (2 * threads * align)) * align;
    if (size > max) size = max;
    if (size < align) size = align;
    if (Atomics.compareExchange(ctl, NEXT, j0, j0 + size) === j0) {
      out[0] = j0;
      out[1] = Math.min(total, j0 + size);
      return true;
    }
  }
}

/** Bytes of the shared buffer a failing worker writes its message into (UTF-8, 0-terminated). */
export const ERROR_TEXT_BYTES = 4096;

export const OP_EXIT = 1;
/** Return to the event loop to receive a new arena's memory by postMessage. */
export const OP_ATTACH = 2;
/**
 * What a thread runs for the pool's kernel commands. The runtime only hands out chunks: the layer
 * above supplies the ops, to the pool for the calling thread and to the workers' entries for theirs.
 */
export interface ThreadOps {
  /** Makes arena `id`'s memory usable on this thread (a worker: at start and when an arena opens). */
  attach(id: number, memory: WebAssembly.Memory): void;
  /** Runs units [j0, j1) of command `op`, whose arguments are in the command block (I, and F for floats). */
  run(op: number, I: Int32Array, F: Float32Array, j0: number, j1: number): void;
}

/**
 * Messages from the caller to a worker. `setup` is the ops' own settings (structured-cloneable),
 * handed to the worker's ThreadOps factory.
 */
export type ToWorker<S = unknown> =
  | {
      type: 'init';
      ctl: SharedArrayBuffer;
      err: SharedArrayBuffer;
      tid: number;
      threads: number;
      memories: WebAssembly.Memory[];
      spin: number;
      setup: S;
    }
  | { type: 'attach'; id: number; memory: WebAssembly.Memory };

/** Messages from a worker (errors while running commands go through the shared error text instead). */
export type FromWorker = { type: 'ready' } | { type: 'error'; message: string };
