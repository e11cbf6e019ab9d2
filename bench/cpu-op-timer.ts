/**
 * A per-op timer for the CPU backend: wraps the kernel methods of one `CpuBackend` instance so that
 * every outermost call adds its wall time to a row keyed by `label(name, args)`. The CPU kernels are
 * synchronous (the calling thread runs its share and waits for the pool's workers), so a call's wall
 * time is the op's whole cost, thread-pool sync included. Time spent outside every kernel call (the
 * ops layer, tensor bookkeeping, allocation, the model's JavaScript between ops) is what remains of the
 * total: `report` returns it as the row "JS between ops".
 */
import type { CpuBackend } from '../src/backend/cpu/cpu-backend.js';

/** The backend's methods that do work on tensors (memory and kernels); the rest are left alone. */
const TIMED = [
  'alloc',
  'zeros',
  'upload',
  'free',
  'copy',
  'fill',
  'readSync',
  'matmul',
  'embedding',
  'addRmsnorm',
  'causalConv1d',
  'selectiveScan',
  'ssdScan',
  'gatedRmsnorm',
  'unary',
  'binary',
  'argmax',
  'attention',
  'rotary',
  'moeRoute',
  'moeAccumulate',
  'reduceRows',
] as const;

export type OpLabel = (name: string, args: unknown[]) => string;

export interface OpRow {
  op: string;
  ms: number;
  calls: number;
}

export class OpTimer {
  private depth = 0;
  private rows = new Map<string, OpRow>();
  /** Only while true are calls timed (the wrappers stay in place). */
  on = false;

  constructor(bk: CpuBackend, label: OpLabel = (name) => name) {
    const target = bk as unknown as Record<string, (...a: unknown[]) => unknown>;
    for (const name of TIMED) {
      const orig = target[name];
      if (typeof orig !== 'function') continue;
      target[name] = (...args: unknown[]): unknown => {
        if (!this.on || this.depth > 0) return orig.apply(bk, args);
        this.depth++;
        const t0 = performance.now();
        try {
          return orig.apply(bk, args);
        } finally {
          const dt = performance.now() - t0;
          this.depth--;
          const key = label(name, args);
          const r = this.rows.get(key);
          if (r) {
            r.ms += dt;
            r.calls++;
          } else this.rows.set(key, { op: key, ms: dt, calls: 1 });
        }
      };
    }
  }

  reset(): void {
    this.rows = new Map();
  }

  /** The rows, largest first, and "JS between ops" = `totalMs` less the timed calls. */
  report(totalMs: number): OpRow[] {
    const rows = [...this.rows.values()].sort((a, b) => b.ms - a.ms);
    const inOps = rows.reduce((s, r) => s + r.ms, 0);
    rows.push({ op: 'JS between ops', ms: totalMs - inOps, calls: 0 });
    return rows;
  }
}
