import { instantiateKernels, setSimdLevel, type SimdLevel, type WasmKernels } from './module.js';
import { matmulCols } from '../reference/matmul.js';
import { ARGS, type ThreadOps } from '../runtime/pool-protocol.js';
import { matmulQ8Cols, q8Layout, q8View } from '../reference/q8.js';
import { matmulQ4Cols, q4Layout, q4View } from '../reference/q4.js';
import { selectiveScan, type ScanViews } from '../reference/selective-scan.js';
import type { FView } from '../reference/view.js';

// The kernel commands of the thread pool (1 and 2 are the runtime's OP_EXIT and OP_ATTACH).
/** WebAssembly decode product (matvec_*), split by rows of W. */
export const OP_MATVEC = 10;
/** WebAssembly blocked product (gemm), split by output columns. */
export const OP_GEMM = 11;
/** WebAssembly selective scan, split by channels. */
export const OP_SCAN = 12;
/** WebAssembly conv1d, split by channels. */
export const OP_CONV = 13;
/** Memory read probe (stream_read), split by 1 MiB blocks: the benchmark's bandwidth measurement. */
export const OP_STREAM = 14;
/** WebAssembly selective scan backward, split by batch rows. */
export const OP_SCAN_BWD = 15;
/** WebAssembly conv1d backward, split by channels. */
export const OP_CONV_BWD = 16;
/** WebAssembly SSD scan (Mamba-2; the chunked form, or the recurrent step for l = 1), split by (batch row, head). */
export const OP_SSD = 17;
/** WebAssembly causal attention (attention_rows), split by query rows (batch row, head, position). */
export const OP_ATTN = 18;
/** WebAssembly Mamba-3 scan (mamba3.wat), split by (batch row, head). */
export const OP_MAMBA3 = 19;
/** TypeScript reference product (matmulCols / matmulQ8Cols / matmulQ4Cols), split by output columns. */
export const OP_TS_MATMUL = 20;
/** TypeScript reference scan, split by channels. */
export const OP_TS_SCAN = 21;
/** WebAssembly Mamba-3 scan backward (mamba3-backward.wat), split by (batch row, head). */
export const OP_MAMBA3_BWD = 22;

/** WebAssembly row kernels of the hybrids' gates (gated.wat: silu_rows, gated_rmsnorm), split by rows. */
export const OP_GATED = 23;

/** WebAssembly causal attention for prefill (attention_rows4, four query rows a unit), split by units; AT's slots. */
export const OP_ATTN4 = 24;

/** Dtype codes in arguments. */
export const DT_F32 = 0;
export const DT_F16 = 1;
export const DT_BF16 = 2;
export const DT_Q8 = 3;
export const DT_I32 = 4;
export const DT_Q4 = 5;

/**
 * What one thread runs for one chunk [j0, j1) of a pool command: the same code on the calling
 * thread and on the workers. Arguments are read from the command block (layouts below, as slot
 * offsets from ARGS); the encoders in launch.ts and ../ts-parallel.ts write them.
 */
export interface ThreadContext {
  /** 0 for the calling thread, 1.. for workers (selects the thread's scratch). */
  tid: number;
  /** Kernel instances by arena id (WebAssembly mode). */
  kernels: (WasmKernels | undefined)[];
  /** Whole-memory typed arrays by arena id (TypeScript mode), current after growth. */
  views(arena: number): ArenaViews;
}

export interface ArenaViews {
  f32: Float32Array;
  u16: Uint16Array;
  i8: Int8Array;
}

/** Keeps whole-memory typed arrays of each memory, remade when a shared memory has grown. */
export class ViewCache {
  private readonly cache: (ArenaViews | undefined)[] = [];
  constructor(private readonly memories: (WebAssembly.Memory | undefined)[]) {}
  get(id: number): ArenaViews {
    const mem = this.memories[id];
    if (!mem) throw new Error(`thread pool: arena ${id} is not attached to this thread`);
    let v = this.cache[id];
    const buf = mem.buffer;
    if (!v || v.f32.buffer.byteLength !== buf.byteLength) {
      v = { f32: new Float32Array(buf), u16: new Uint16Array(buf), i8: new Int8Array(buf) };
      this.cache[id] = v;
    }
    return v;
  }
}

// Slot layouts (offsets from ARGS).
export const MV = {
  arena: 0,
  kind: 1,
  out: 2,
  ldo: 3,
  x: 4,
  ldx: 5,
  w: 6,
  ldw: 7,
  post: 8,
  bias: 9,
  m: 10,
  q: 11,
  acc: 12,
  ws: 13,
  xsc: 14,
  scratch: 15,
  stride: 16,
} as const;
export const GM = {
  arena: 0,
  out: 1,
  ldo: 2,
  a: 3,
  rsa: 4,
  csa: 5,
  b: 6,
  bs: 7,
  ldb: 8,
  kind: 9,
  transB: 10,
  bias: 11,
  m: 12,
  q: 13,
  acc: 14,
  scratch: 15,
  stride: 16,
  pre: 17,
  ldpre: 18,
} as const;
export const SC = {
  arena: 0,
  y: 1,
  ldy: 2,
  u: 3,
  ldu: 4,
  dl: 5,
  lddl: 6,
  A: 7,
  ldA: 8,
  B: 9,
  ldB: 10,
  C: 11,
  ldC: 12,
  D: 13,
  z: 14,
  ldz: 15,
  dbias: 16,
  h0: 17,
  ldh0: 18,
  hout: 19,
  ldho: 20,
  b: 21,
  l: 22,
  e: 23,
  n: 24,
  softplus: 25,
  scratch: 26,
  stride: 27,
} as const;
export const ST = { arena: 0, base: 1 } as const;
export const CB = {
  arena: 0,
  dx: 1,
  lddx: 2,
  dw: 3,
  lddw: 4,
  dbias: 5,
  g: 6,
  ldg: 7,
  x: 8,
  ldx: 9,
  w: 10,
  ldw: 11,
  bias: 12,
  b: 13,
  l: 14,
  e: 15,
  k: 16,
  silu: 17,
  scratch: 18,
  stride: 19,
} as const;
export const SB = {
  arena: 0,
  dy: 1,
  lddy: 2,
  u: 3,
  ldu: 4,
  dl: 5,
  lddl: 6,
  A: 7,
  ldA: 8,
  B: 9,
  ldB: 10,
  C: 11,
  ldC: 12,
  D: 13,
  z: 14,
  ldz: 15,
  dbias: 16,
  h0: 17,
  ldh0: 18,
  du: 19,
  lddu: 20,
  ddl: 21,
  ldddl: 22,
  dB: 23,
  lddB: 24,
  dC: 25,
  lddC: 26,
  dz: 27,
  lddz: 28,
  dh0: 29,
  lddh0: 30,
  pA: 31,
  pD: 32,
  pbias: 33,
  l: 34,
  e: 35,
  n: 36,
  softplus: 37,
  T: 38,
  scratch: 39,
  stride: 40,
} as const;
export const CV = {
  arena: 0,
  out: 1,
  ldo: 2,
  x: 3,
  ldx: 4,
  w: 5,
  ldw: 6,
  bias: 7,
  state: 8,
  lds: 9,
  b: 10,
  l: 11,
  e: 12,
  k: 13,
  silu: 14,
  scratch: 15,
  stride: 16,
} as const;
export const SD = {
  arena: 0,
  y: 1,
  ldy: 2,
  x: 3,
  ldx: 4,
  dt: 5,
  lddt: 6,
  A: 7,
  B: 8,
  ldB: 9,
  C: 10,
  ldC: 11,
  D: 12,
  dbias: 13,
  h0: 14,
  ldh0: 15,
  hout: 16,
  ldho: 17,
  b: 18,
  l: 19,
  h: 20,
  p: 21,
  g: 22,
  n: 23,
  softplus: 24,
  dtMin: 25, // f32
  dtMax: 26, // f32
  Q: 27,
  state: 28,
  scratch: 29,
  stride: 30,
} as const;
export const AT = {
  arena: 0,
  out: 1,
  ldo: 2,
  q: 3,
  ldq: 4,
  k: 5,
  ldk: 6,
  v: 7,
  ldv: 8,
  lq: 9,
  lk: 10,
  H: 11,
  G: 12,
  dk: 13,
  dv: 14,
  keys: 15,
  scale: 16, // f32
  scratch: 17,
  stride: 18,
  /** Address of the per-sequence key counts (attention_rows_lens), 0 for none (keys for all). */
  lens: 19,
} as const;
export const GT = {
  arena: 0,
  kind: 1, // 0 silu_rows, 1 gated_rmsnorm, 2 quantize_q4, 3 quantize_q8 (quants at out, scales at z, source at x of dtype code ldx)
  out: 2,
  ldo: 3,
  x: 4,
  ldx: 5,
  z: 6,
  ldz: 7,
  w: 8,
  cols: 9,
  gs: 10,
  eps: 11, // f32
  nbg: 12,
} as const;
export const M3 = { arena: 0, params: 1, scratch: 2, stride: 3, t0: 4, t1: 5 } as const;
export const M3B = { arena: 0, params: 1, scratch: 2, stride: 3 } as const;
/** A TypeScript-mode view: 4 slots (arena or -1 for none, first element's index in the arena's array of that dtype (q8: byte offset), ld, dtype). */
export const VIEW_SLOTS = 4;
export const TM = {
  out: 0,
  a: 4,
  b: 8,
  bias: 12,
  m: 16,
  q: 17,
  p: 18,
  transA: 19,
  transB: 20,
  acc: 21,
  bRows: 22,
  bCols: 23,
} as const;
export const TS = {
  y: 0,
  u: 4,
  delta: 8,
  A: 12,
  B: 16,
  C: 20,
  D: 24,
  z: 28,
  dbias: 32,
  h0: 36,
  hout: 40,
  b: 44,
  l: 45,
  e: 46,
  n: 47,
  softplus: 48,
} as const;

function view(ctx: ThreadContext, I: Int32Array, at: number): FView | null {
  const arena = I[ARGS + at];
  if (arena < 0) return null;
  const v = ctx.views(arena);
  const dt = I[ARGS + at + 3];
  const off = I[ARGS + at + 1] >>> 0;
  const ld = I[ARGS + at + 2];
  if (dt === DT_F32) return { data: v.f32, off, ld, dtype: 'f32' };
  return { data: v.u16, off, ld, dtype: dt === DT_F16 ? 'f16' : 'bf16' };
}

/** Runs units [j0, j1) of the command in the block. */
export function runChunk(ctx: ThreadContext, op: number, I: Int32Array, F: Float32Array, j0: number, j1: number): void {
  const a = (k: number): number => I[ARGS + k];
  switch (op) {
    case OP_MATVEC: {
      const K = ctx.kernels[a(MV.arena)]!;
      const kind = a(MV.kind);
      if (kind === DT_Q4)
        K.matvec_q4(
          a(MV.out),
          a(MV.ldo),
          a(MV.x),
          a(MV.xsc),
          a(MV.w),
          a(MV.ws),
          a(MV.ldw),
          a(MV.bias),
          a(MV.m),
          j0,
          j1,
          a(MV.acc),
          a(MV.scratch) && a(MV.scratch) + ctx.tid * a(MV.stride),
        );
      else if (kind === DT_Q8)
        K.matvec_q8(
          a(MV.out),
          a(MV.ldo),
          a(MV.x),
          a(MV.xsc),
          a(MV.w),
          a(MV.ws),
          a(MV.ldw),
          a(MV.bias),
          a(MV.m),
          j0,
          j1,
          a(MV.acc),
        );
      else {
        const f = kind === DT_F32 ? K.matvec_f32 : kind === DT_F16 ? K.matvec_f16 : K.matvec_bf16;
        f(
          a(MV.out),
          a(MV.ldo),
          a(MV.x),
          a(MV.ldx),
          a(MV.w),
          a(MV.ldw),
          F[ARGS + MV.post],
          a(MV.bias),
          a(MV.m),
          a(MV.q),
          j0,
          j1,
          a(MV.acc),
        );
      }
      return;
    }
    case OP_GEMM: {
      const K = ctx.kernels[a(GM.arena)]!;
      K.gemm(
        a(GM.out),
        a(GM.ldo),
        a(GM.a),
        a(GM.rsa),
        a(GM.csa),
        a(GM.b),
        a(GM.bs),
        a(GM.ldb),
        a(GM.kind),
        a(GM.transB),
        a(GM.bias),
        a(GM.m),
        a(GM.q),
        j0,
        j1,
        a(GM.acc),
        a(GM.scratch) + ctx.tid * a(GM.stride),
        a(GM.pre),
        a(GM.ldpre),
      );
      return;
    }
    case OP_SCAN: {
      const K = ctx.kernels[a(SC.arena)]!;
      K.selective_scan(
        a(SC.y),
        a(SC.ldy),
        a(SC.u),
        a(SC.ldu),
        a(SC.dl),
        a(SC.lddl),
        a(SC.A),
        a(SC.ldA),
        a(SC.B),
        a(SC.ldB),
        a(SC.C),
        a(SC.ldC),
        a(SC.D),
        a(SC.z),
        a(SC.ldz),
        a(SC.dbias),
        a(SC.h0),
        a(SC.ldh0),
        a(SC.hout),
        a(SC.ldho),
        a(SC.b),
        a(SC.l),
        a(SC.e),
        a(SC.n),
        a(SC.softplus),
        j0,
        j1,
        a(SC.scratch) + ctx.tid * a(SC.stride),
      );
      return;
    }
    case OP_CONV: {
      const K = ctx.kernels[a(CV.arena)]!;
      K.conv1d(
        a(CV.out),
        a(CV.ldo),
        a(CV.x),
        a(CV.ldx),
        a(CV.w),
        a(CV.ldw),
        a(CV.bias),
        a(CV.state),
        a(CV.lds),
        a(CV.b),
        a(CV.l),
        a(CV.e),
        a(CV.k),
        a(CV.silu),
        j0,
        j1,
        a(CV.scratch) + ctx.tid * a(CV.stride),
      );
      return;
    }
    case OP_SCAN_BWD: {
      const K = ctx.kernels[a(SB.arena)]!;
      K.selective_scan_bwd(
        a(SB.dy),
        a(SB.lddy),
        a(SB.u),
        a(SB.ldu),
        a(SB.dl),
        a(SB.lddl),
        a(SB.A),
        a(SB.ldA),
        a(SB.B),
        a(SB.ldB),
        a(SB.C),
        a(SB.ldC),
        a(SB.D),
        a(SB.z),
        a(SB.ldz),
        a(SB.dbias),
        a(SB.h0),
        a(SB.ldh0),
        a(SB.du),
        a(SB.lddu),
        a(SB.ddl),
        a(SB.ldddl),
        a(SB.dB),
        a(SB.lddB),
        a(SB.dC),
        a(SB.lddC),
        a(SB.dz),
        a(SB.lddz),
        a(SB.dh0),
        a(SB.lddh0),
        a(SB.pA),
        a(SB.pD),
        a(SB.pbias),
        a(SB.l),
        a(SB.e),
        a(SB.n),
        a(SB.softplus),
        a(SB.T),
        j0,
        j1,
        a(SB.scratch) + ctx.tid * a(SB.stride),
      );
      return;
    }
    case OP_CONV_BWD: {
      const K = ctx.kernels[a(CB.arena)]!;
      K.conv1d_bwd(
        a(CB.dx),
        a(CB.lddx),
        a(CB.dw),
        a(CB.lddw),
        a(CB.dbias),
        a(CB.g),
        a(CB.ldg),
        a(CB.x),
        a(CB.ldx),
        a(CB.w),
        a(CB.ldw),
        a(CB.bias),
        a(CB.b),
        a(CB.l),
        a(CB.e),
        a(CB.k),
        a(CB.silu),
        j0,
        j1,
        a(CB.scratch) + ctx.tid * a(CB.stride),
      );
      return;
    }
    case OP_SSD: {
      const K = ctx.kernels[a(SD.arena)]!;
      if (a(SD.l) === 1)
        K.ssd_step(
          a(SD.y),
          a(SD.ldy),
          a(SD.x),
          a(SD.ldx),
          a(SD.dt),
          a(SD.lddt),
          a(SD.A),
          a(SD.B),
          a(SD.ldB),
          a(SD.C),
          a(SD.ldC),
          a(SD.D),
          a(SD.dbias),
          a(SD.h0),
          a(SD.ldh0),
          a(SD.hout),
          a(SD.ldho),
          a(SD.h),
          a(SD.p),
          a(SD.g),
          a(SD.n),
          a(SD.softplus),
          F[ARGS + SD.dtMin],
          F[ARGS + SD.dtMax],
          j0,
          j1,
        );
      else
        K.ssd_scan(
          a(SD.y),
          a(SD.ldy),
          a(SD.x),
          a(SD.ldx),
          a(SD.dt),
          a(SD.lddt),
          a(SD.A),
          a(SD.B),
          a(SD.ldB),
          a(SD.C),
          a(SD.ldC),
          a(SD.D),
          a(SD.dbias),
          a(SD.h0),
          a(SD.ldh0),
          a(SD.hout),
          a(SD.ldho),
          a(SD.b),
          a(SD.l),
          a(SD.h),
          a(SD.p),
          a(SD.g),
          a(SD.n),
          a(SD.softplus),
          F[ARGS + SD.dtMin],
          F[ARGS + SD.dtMax],
          a(SD.Q),
          j0,
          j1,
          a(SD.state),
          a(SD.scratch) + ctx.tid * a(SD.stride),
        );
      return;
    }
    case OP_MAMBA3: {
      ctx.kernels[a(M3.arena)]!.mamba3_scan(
        a(M3.params),
        j0,
        j1,
        a(M3.scratch) + ctx.tid * a(M3.stride),
        a(M3.t0),
        a(M3.t1),
      );
      return;
    }
    case OP_MAMBA3_BWD: {
      ctx.kernels[a(M3B.arena)]!.mamba3_bwd(a(M3B.params), j0, j1, a(M3B.scratch) + ctx.tid * a(M3B.stride));
      return;
    }
    case OP_ATTN:
    case OP_ATTN4: {
      const K = ctx.kernels[a(AT.arena)]!;
      (a(AT.lens) ? K.attention_rows_lens : op === OP_ATTN ? K.attention_rows : K.attention_rows4)(
        a(AT.out),
        a(AT.ldo),
        a(AT.q),
        a(AT.ldq),
        a(AT.k),
        a(AT.ldk),
        a(AT.v),
        a(AT.ldv),
        a(AT.lq),
        a(AT.lk),
        a(AT.H),
        a(AT.G),
        a(AT.dk),
        a(AT.dv),
        a(AT.lens) || a(AT.keys),
        F[ARGS + AT.scale],
        a(AT.scratch) + ctx.tid * a(AT.stride),
        j0,
        j1,
      );
      return;
    }
    case OP_GATED: {
      const K = ctx.kernels[a(GT.arena)]!;
      const kind = a(GT.kind);
      if (kind === 0) K.silu_rows(a(GT.out), a(GT.ldo), a(GT.x), a(GT.ldx), j0, j1, a(GT.cols));
      else if (kind === 2) K.quantize_q4(a(GT.out), a(GT.z), a(GT.x), a(GT.ldx), a(GT.cols), j0, j1);
      else if (kind === 3) K.quantize_q8(a(GT.out), a(GT.z), a(GT.x), a(GT.ldx), a(GT.cols), j0, j1);
      else
        K.gated_rmsnorm(
          a(GT.out),
          a(GT.ldo),
          a(GT.x),
          a(GT.ldx),
          a(GT.z),
          a(GT.ldz),
          a(GT.w),
          j0,
          j1,
          a(GT.cols),
          a(GT.gs),
          F[ARGS + GT.eps],
          a(GT.nbg),
        );
      return;
    }
    case OP_STREAM: {
      ctx.kernels[a(ST.arena)]!.stream_read(a(ST.base) + j0 * (1 << 20), (j1 - j0) * (1 << 20));
      return;
    }
    case OP_TS_MATMUL: {
      const out = view(ctx, I, TM.out)!,
        av = view(ctx, I, TM.a)!,
        bias = view(ctx, I, TM.bias);
      const g = {
        m: a(TM.m),
        q: a(TM.q),
        p: a(TM.p),
        transA: a(TM.transA) !== 0,
        transB: a(TM.transB) !== 0,
        accumulate: a(TM.acc) !== 0,
      };
      if (I[ARGS + TM.b + 3] === DT_Q8) {
        const rows = a(TM.bRows),
          cols = a(TM.bCols);
        const bytes = q8Layout(rows, cols).bytes;
        const i8 = ctx.views(a(TM.b)).i8;
        const start = I[ARGS + TM.b + 1] >>> 0;
        matmulQ8Cols(out, av, q8View(i8.subarray(start, start + bytes), rows, cols), bias, g, j0, j1);
      } else if (I[ARGS + TM.b + 3] === DT_Q4) {
        const rows = a(TM.bRows),
          cols = a(TM.bCols);
        const bytes = q4Layout(rows, cols).bytes;
        const i8 = ctx.views(a(TM.b)).i8;
        const start = I[ARGS + TM.b + 1] >>> 0;
        matmulQ4Cols(out, av, q4View(i8.subarray(start, start + bytes), rows, cols), bias, g, j0, j1);
      } else matmulCols(out, av, view(ctx, I, TM.b)!, bias, g, j0, j1);
      return;
    }
    case OP_TS_SCAN: {
      const s: ScanViews = {
        y: view(ctx, I, TS.y)!,
        u: view(ctx, I, TS.u)!,
        delta: view(ctx, I, TS.delta)!,
        A: view(ctx, I, TS.A)!,
        B: view(ctx, I, TS.B)!,
        C: view(ctx, I, TS.C)!,
        D: view(ctx, I, TS.D),
        z: view(ctx, I, TS.z),
        deltaBias: view(ctx, I, TS.dbias),
        h0: view(ctx, I, TS.h0),
        hOut: view(ctx, I, TS.hout),
        deltaSoftplus: a(TS.softplus) !== 0,
      };
      selectiveScan(s, a(TS.b), a(TS.l), a(TS.e), a(TS.n), j0, j1);
      return;
    }
    default:
      throw new Error(`thread pool: unknown op ${op}`);
  }
}

/** The workers' settings of their ops: the caller's kernel kind and SIMD build. */
export interface ThreadOpsSetup {
  /** Whether the WebAssembly kernels run (else only the TypeScript ones, kernels: 'ts'). */
  wasm: boolean;
  /** The caller's build: the same code on every thread. */
  simd: SimdLevel;
}

/** The pool's commands on one thread (the runtime's ThreadOps), over that thread's kernels and memories. */
export class KernelThreadOps implements ThreadOps {
  private readonly ctx: ThreadContext;

  /**
   * `kernels` and `memories` are by arena id; the calling thread passes the backend's own lists
   * (so arenas opened later appear in them), a worker fresh ones that `attach` fills.
   */
  constructor(
    tid: number,
    private readonly kernels: (WasmKernels | undefined)[],
    private readonly memories: (WebAssembly.Memory | undefined)[],
    private readonly wasm: boolean,
  ) {
    const views = new ViewCache(memories);
    this.ctx = { tid, kernels, views: (id) => views.get(id) };
  }

  attach(id: number, memory: WebAssembly.Memory): void {
    this.memories[id] = memory;
    if (this.wasm) this.kernels[id] = instantiateKernels(memory, true);
  }

  run(op: number, I: Int32Array, F: Float32Array, j0: number, j1: number): void {
    runChunk(this.ctx, op, I, F, j0, j1);
  }
}

/** A worker's ops (its entry passes this to startPoolWorker); throws if the SIMD build cannot be set. */
export function workerThreadOps(setup: ThreadOpsSetup, tid: number): ThreadOps {
  setSimdLevel(setup.simd);
  return new KernelThreadOps(tid, [], [], setup.wasm);
}
