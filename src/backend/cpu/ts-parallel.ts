import { fail } from '../../errors.js';
import type { ArenaSet } from './runtime/arena.js';
import type { MatmulGeom } from './reference/matmul.js';
import { DT_BF16, DT_F16, DT_F32, DT_Q4, DT_Q8, OP_TS_MATMUL, OP_TS_SCAN, TM, TS } from './wasm/thread-ops.js';
import type { ThreadPool } from './runtime/pool.js';
import type { ScanViews } from './reference/selective-scan.js';
import type { FView } from './reference/view.js';

/** Work that a thread pool can split: matmul by output columns, the scan by channels. */
export interface CpuParallel {
  readonly threads: number;
  matmul(out: FView, a: FView, b: FView, bias: FView | null, g: MatmulGeom): void;
  /** The same with q8 weights (their storage and shape). */
  matmulQ8(out: FView, a: FView, b: Int8Array, bRows: number, bCols: number, bias: FView | null, g: MatmulGeom): void;
  /** The same with q4 weights. */
  matmulQ4(out: FView, a: FView, b: Int8Array, bRows: number, bCols: number, bias: FView | null, g: MatmulGeom): void;
  scan(s: ScanViews, b: number, l: number, e: number, n: number): void;
}

/**
 * The TypeScript reference kernels on the thread pool (the CPU backend's `parallel` hook, used when
 * it runs with kernels: 'ts'): products split by output columns, the scan by channels. Views are
 * sent as (arena, index of the first element in the arena's typed array, ld, dtype).
 */
export class TsParallel implements CpuParallel {
  constructor(
    private readonly pool: ThreadPool,
    private readonly arenas: ArenaSet,
  ) {}

  get threads(): number {
    return this.pool.threads;
  }

  private put(at: number, v: FView | null): void {
    const P = this.pool;
    if (!v) {
      P.setI(at, -1);
      return;
    }
    const a = this.arenas.arenaOf(v.data);
    if (!a) fail('UNSUPPORTED', "thread pool: a tensor outside the backend's memory");
    P.setI(at, a.id);
    P.setI(at + 1, v.data.byteOffset / v.data.BYTES_PER_ELEMENT + v.off);
    P.setI(at + 2, v.ld);
    P.setI(at + 3, v.dtype === 'f32' ? DT_F32 : v.dtype === 'f16' ? DT_F16 : DT_BF16);
  }

  private geom(g: MatmulGeom): void {
    const P = this.pool;
    P.setI(TM.m, g.m);
    P.setI(TM.q, g.q);
    P.setI(TM.p, g.p);
    P.setI(TM.transA, g.transA ? 1 : 0);
    P.setI(TM.transB, g.transB ? 1 : 0);
    P.setI(TM.acc, g.accumulate ? 1 : 0);
  }

  matmul(out: FView, a: FView, b: FView, bias: FView | null, g: MatmulGeom): void {
    this.put(TM.out, out);
    this.put(TM.a, a);
    this.put(TM.b, b);
    this.put(TM.bias, bias);
    this.geom(g);
    this.pool.run(OP_TS_MATMUL, g.p, 4);
  }

  matmulQ8(out: FView, a: FView, b: Int8Array, bRows: number, bCols: number, bias: FView | null, g: MatmulGeom): void {
    this.matmulQuant(DT_Q8, out, a, b, bRows, bCols, bias, g);
  }

  matmulQ4(out: FView, a: FView, b: Int8Array, bRows: number, bCols: number, bias: FView | null, g: MatmulGeom): void {
    this.matmulQuant(DT_Q4, out, a, b, bRows, bCols, bias, g);
  }

  private matmulQuant(
    kind: number,
    out: FView,
    a: FView,
    b: Int8Array,
    bRows: number,
    bCols: number,
    bias: FView | null,
    g: MatmulGeom,
  ): void {
    const ar = this.arenas.arenaOf(b);
    if (!ar) fail('UNSUPPORTED', "thread pool: a tensor outside the backend's memory");
    this.put(TM.out, out);
    this.put(TM.a, a);
    this.put(TM.bias, bias);
    const P = this.pool;
    P.setI(TM.b, ar.id);
    P.setI(TM.b + 1, b.byteOffset);
    P.setI(TM.b + 2, 0);
    P.setI(TM.b + 3, kind);
    P.setI(TM.bRows, bRows);
    P.setI(TM.bCols, bCols);
    this.geom(g);
    this.pool.run(OP_TS_MATMUL, g.p, 4);
  }

  scan(s: ScanViews, b: number, l: number, e: number, n: number): void {
    const views: [number, FView | null][] = [
      [TS.y, s.y],
      [TS.u, s.u],
      [TS.delta, s.delta],
      [TS.A, s.A],
      [TS.B, s.B],
      [TS.C, s.C],
      [TS.D, s.D],
      [TS.z, s.z],
      [TS.dbias, s.deltaBias],
      [TS.h0, s.h0],
      [TS.hout, s.hOut],
    ];
    for (const [at, v] of views) this.put(at, v);
    const P = this.pool;
    P.setI(TS.b, b);
    P.setI(TS.l, l);
    P.setI(TS.e, e);
    P.setI(TS.n, n);
    P.setI(TS.softplus, s.deltaSoftplus ? 1 : 0);
    P.run(OP_TS_SCAN, e);
  }
}
