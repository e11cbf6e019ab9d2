// Layer 3 of the CPU backend, wasm/: the WebAssembly SIMD kernels (*.wat, built into kernels.generated.ts,
// loaded by module.ts), this launcher, the pool's op table (thread-ops.ts) and the pool workers' entries
// with the hosts that start them. May import reference/ (fallbacks, the TypeScript ops on the pool),
// runtime/, the backend contract, tensor/ and errors.ts; never the CpuBackend assembly above it.

import type { BinaryOp, SelectiveScanArgs, SsdDims, SsdScanArgs, UnaryOp } from '../../contract/inference.js';
import type { AttentionArgs } from '../../contract/mixers.js';
import type { Mamba3ScanArgs, Mamba3ScanBackwardArgs } from '../../contract/mamba3.js';
import {
  mamba3BwdChunk,
  mamba3BwdPartialElems,
  mamba3BwdReduce,
  mamba3BwdScratchBytes,
  mamba3BwdStore,
  mamba3BwdSums,
} from './mamba3-backward-reduce.js';
import type { AttentionDims } from '../reference/attention.js';
import type { CausalConv1dBackwardArgs, LossReduction, SelectiveScanBackwardArgs } from '../../contract/training.js';
import { targetOf } from '../reference/cross-entropy.js';
import { q4Layout } from '../reference/q4.js';
import { q8Layout } from '../reference/q8.js';
import { fail } from '../../../errors.js';
import type { Arena, ArenaSet } from '../runtime/arena.js';
import type { MatmulGeom } from '../reference/matmul.js';
import {
  AT,
  GT,
  CB,
  CV,
  DT_BF16,
  DT_F16,
  DT_F32,
  DT_Q4,
  DT_Q8,
  GM,
  M3,
  M3B,
  MV,
  OP_ATTN,
  OP_ATTN4,
  OP_GATED,
  OP_CONV,
  OP_CONV_BWD,
  OP_GEMM,
  OP_MAMBA3,
  OP_MAMBA3_BWD,
  OP_MATVEC,
  OP_SCAN,
  OP_SCAN_BWD,
  OP_SSD,
  OP_STREAM,
  SB,
  SC,
  SD,
  ST,
} from './thread-ops.js';
import type { ThreadPool } from '../runtime/pool.js';
import { isQuantized, type DType } from '../../../tensor/dtype.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { instantiateKernels, MAX_SCAN_STATE, THREAD_SCRATCH_BYTES, type WasmKernels } from './module.js';

/**
 * Runs the CPU backend's kernels in WebAssembly: turns tensors into byte addresses, prepares x for
 * the 16- and 8-bit products, picks the decode (matvec) or blocked (gemm) product, and splits work
 * over the thread pool. Every method returns false when it does not handle the dtypes it was given;
 * the backend then runs the TypeScript reference.
 *
 * Operands must sit in one memory: the call runs in the arena of its anchor (the weight, or the
 * largest operand) and other operands are staged, i.e. copied into that arena's scratch before the
 * call and (outputs) back after it. With one arena (models up to ~4 GB) nothing is ever staged.
 */
const KIND: Partial<Record<DType, number>> = { f32: DT_F32, f16: DT_F16, bf16: DT_BF16, q8: DT_Q8, q4: DT_Q4 };
const BYTES: Record<DType, number> = { f32: 4, i32: 4, f16: 2, bf16: 2, q8: 1, q4: 1 }; // q8, q4: offset 0
/** Bytes of per-thread scratch of the scan backward (layout in scan-backward.wat). */
export function scanBackwardScratchBytes(l: number, n: number, T: number): number {
  const N = 16 * n;
  return N * (4 + 2 * l + Math.ceil(l / T) + 2 * T) + 48 * T;
}

/**
 * The chunk length the WebAssembly SSD scan runs (at most): the chunk only changes rounding (the
 * contract), and past ~64 steps the quadratic intra-chunk term costs more multiply-adds than the
 * blocked products save on a CPU, while G and M (Q x Q each) leave the L2 cache.
 */
export const SSD_MAX_CHUNK = 64;

/** Bytes of per-thread scratch of the SSD scan with chunk Q (layout in ssd.wat). */
export function ssdScratchBytes(Q: number, n: number, p: number): number {
  const Qp = (Q + 3) & ~3,
    nn = (n + 3) & ~3;
  return Math.ceil((4 * (3 * Qp * nn + 2 * Qp * Qp + 2 * Qp * ssdStateCols(p) + 3 * Qp)) / 64) * 64;
}

/** Columns of a unit's state in the SSD scan's layout (head_dim rounded up to 8; rows: d_state to 4). */
function ssdStateCols(p: number): number {
  return (p + 7) & ~7;
}

/** Bytes of per-thread scratch of the Mamba-3 scan (layout in mamba3.wat). */
export function mamba3ScratchBytes(n: number, p: number, R: number, S: number): number {
  const blk = (cnt: number, size: number): number => (cnt * size + 15) & ~15;
  const nn = ((n + 3) & ~3) + 4,
    pp = (p + 3) & ~3;
  const bytes = blk(S + 3, 4) + 2 * blk(nn + 4, 4) + 3 * blk(R * nn, 4) + 3 * blk(R * pp, 4) + 2 * blk(pp, 4) + 32 * R;
  return Math.ceil(bytes / 64) * 64;
}

/** Bytes of the Mamba-3 scan's argument block (layout in mamba3.wat). */
const MAMBA3_PARAM_BYTES = 144;

/** Byte address of a q8 or q4 matrix's scales (after its quants: rows x ld bytes, or rows x ld / 2); 0 otherwise. */
function scalesAt(kind: number, at: number, t: Tensor): number {
  return kind === DT_Q8 ? at + t.rows * t.ld : kind === DT_Q4 ? at + (t.rows * t.ld) / 2 : 0;
}

/** Below this many rows of x, products stream W once per row (matvec); from here, the blocked gemm. */
export const MATVEC_MAX_M = 8;

interface ArenaScratch {
  threads: number; // per-thread scratch blocks held
  threadBase: number;
  bump: number; // per-call region (prepared x, staged operands)
  bumpSize: number;
  top: number;
  need: number; // most bytes a call asked for (grows the region)
  extras: number[]; // overflow blocks of the current call
}

export class WasmOps {
  /** Kernel instances by arena id (shared with the pool's calling-thread context). */
  readonly kernels: (WasmKernels | undefined)[] = [];
  private readonly scratch: (ArenaScratch | undefined)[] = [];
  pool: ThreadPool | undefined;
  // the current call
  private tgt!: Arena;
  private S!: ArenaScratch;
  private K!: WasmKernels;
  private readonly outs: { src: Uint8Array; dst: number; bytes: number }[] = [];
  private nOuts = 0;
  /**
   * Weights the caller promised not to change (`packWeights`): each is packed into the gemm's panel
   * layout the first time it is B of a gemm, then used as packed (no pack per call). Null: not yet.
   */
  private readonly constantB = new Map<Tensor, { arena: Arena; at: number; ldpre: number; bytes: number } | null>();
  private packBudget = 0;

  constructor(private readonly arenas: ArenaSet) {}

  /** Instantiates the kernels over an arena's memory (when it opens). */
  attach(a: Arena): void {
    this.kernels[a.id] = instantiateKernels(a.memory, a.shared);
  }

  private get threads(): number {
    return this.pool ? this.pool.threads : 1;
  }

  // ---- operands ---------------------------------------------------------------------------------

  private begin(anchor: Tensor): void {
    const a = this.arenas.arenaOf(anchor.storage as ArrayBufferView) ?? this.arenas.first();
    this.tgt = a;
    let S = this.scratch[a.id];
    if (!S)
      S = this.scratch[a.id] = { threads: 0, threadBase: 0, bump: 0, bumpSize: 0, top: 0, need: 64 << 10, extras: [] };
    for (const x of S.extras) a.free(x);
    S.extras.length = 0;
    if (S.need > S.bumpSize) {
      if (S.bumpSize) a.free(S.bump);
      S.bumpSize = Math.ceil((S.need * 1.25) / 64) * 64;
      S.bump = this.arenas.allocScratch(a, S.bumpSize);
    }
    S.top = 0;
    this.S = S;
    this.K = this.kernels[a.id]!;
    this.nOuts = 0;
  }

  /** A per-call scratch block of `bytes` in the current arena. */
  private bump(bytes: number): number {
    const S = this.S;
    const size = Math.ceil(Math.max(bytes, 16) / 64) * 64;
    S.need = Math.max(S.need, S.top + size);
    if (S.top + size <= S.bumpSize) {
      const p = S.bump + S.top;
      S.top += size;
      return p;
    }
    S.top += size;
    const p = this.arenas.allocScratch(this.tgt, size);
    S.extras.push(p);
    return p;
  }

  /** Per-thread scratch base in the current arena (THREAD_SCRATCH_BYTES apart). */
  private threadScratch(): number {
    const S = this.S,
      n = this.threads;
    if (S.threads < n) {
      if (S.threads) this.tgt.free(S.threadBase);
      S.threadBase = this.arenas.allocScratch(this.tgt, n * THREAD_SCRATCH_BYTES);
      S.threads = n;
    }
    return S.threadBase;
  }

  /** Byte address of a tensor's first element in the current arena (staged there if it lives elsewhere). */
  private at(t: Tensor, out: boolean): number {
    const st = t.storage as ArrayBufferView;
    const e = BYTES[t.dtype];
    if (this.arenas.arenaOf(st) === this.tgt) return st.byteOffset + t.offset * e;
    const src = isQuantized(t.dtype)
      ? new Uint8Array(st.buffer, st.byteOffset, st.byteLength)
      : new Uint8Array(st.buffer, st.byteOffset + t.offset * e, (t.rows > 0 ? (t.rows - 1) * t.ld + t.cols : 0) * e);
    const dst = this.bump(src.length);
    new Uint8Array(this.tgt.buffer(), dst, src.length).set(src);
    if (out) {
      const rec = this.outs[this.nOuts] ?? (this.outs[this.nOuts] = { src, dst, bytes: 0 });
      rec.src = src;
      rec.dst = dst;
      rec.bytes = src.length;
      this.nOuts++;
    }
    return dst;
  }

  private end(): void {
    for (let i = 0; i < this.nOuts; i++) {
      const r = this.outs[i];
      r.src.set(new Uint8Array(this.tgt.buffer(), r.dst, r.bytes));
    }
    this.nOuts = 0;
  }

  // ---- kernels ----------------------------------------------------------------------------------

  /**
   * Declares weights that will not change (a model served for inference): products with one of them
   * as B in the Linear layout (transB) skip the gemm's per-call pack, which at small m (a batched
   * decode step: 8 to 32 rows) is a third to a half of the product's time. Each is packed on its first
   * such product, into 4 * cols * ceil8(rows) bytes of its arena (f32 panels; q8 and q4: gemm_q's
   * integer panels, 17 * ld * ceil8(rows) / 8 bytes, 9 for q4 in the relaxed build), while the
   * packed bytes stay within maxBytes. Writing a declared weight afterwards would leave its packed
   * copy stale: call `unpackWeights` first.
   */
  packWeights(weights: readonly Tensor[], maxBytes: number): void {
    this.packBudget = maxBytes;
    for (const w of weights) if (w.shape.length === 2 && !this.constantB.has(w)) this.constantB.set(w, null);
  }

  /** Bytes of packed weights held. */
  get packedBytes(): number {
    let n = 0;
    for (const e of this.constantB.values()) if (e) n += e.bytes;
    return n;
  }

  /** Frees every packed weight and forgets the declarations. */
  unpackWeights(): void {
    for (const e of this.constantB.values()) if (e) e.arena.free(e.at);
    this.constantB.clear();
    this.packBudget = 0;
  }

  /** The packed copy of b (packing it now if declared and within budget), or null. */
  private packedB(b: Tensor, kind: number, q: number, p: number): { at: number; ldpre: number } | null {
    let e = this.constantB.get(b);
    if (e === undefined) return null;
    if (b.disposed) {
      if (e) e.arena.free(e.at);
      this.constantB.delete(b);
      return null;
    }
    if (e) return e.arena === this.tgt ? e : null;
    // f32 panels (4 bytes a weight) or, for q8/q4, gemm_q's panels with scales (17 bytes per depth and 8
    // rows; q4 in the relaxed build: 9)
    const ldpre = (p + 7) & ~7,
      bytes =
        kind === DT_Q8 || kind === DT_Q4
          ? ((kind === DT_Q4 && !this.K.q4_x_wide() ? 9 : 17) * b.ld * ldpre) / 8
          : 4 * q * ldpre;
    if (bytes > this.packBudget || b.rows !== p || b.cols !== q) return null;
    const at = this.tgt.alloc(bytes, false);
    if (at < 0) return null; // (no room: pack per call as before)
    const w = this.at(b, false);
    this.K.pack_b_all(at, w, scalesAt(kind, w, b), b.ld, kind, 1, q, p);
    this.packBudget -= bytes;
    e = { arena: this.tgt, at, ldpre, bytes };
    this.constantB.set(b, e);
    return e;
  }

  /** out (m, p) <- [out +] op(a) · op(b) [+ bias]: a f32, b f32/f16/bf16/q8/q4, bias f32. */
  matmul(out: Tensor, a: Tensor, b: Tensor, bias: Tensor | null, g: MatmulGeom): boolean {
    const kind = KIND[b.dtype];
    if (kind === undefined || a.dtype !== 'f32' || (bias && bias.dtype !== 'f32')) return false;
    const { m, q, p } = g;
    this.begin(b);
    const K = this.K;
    const o = this.at(out, true);
    let x = this.at(a, false);
    const w = this.at(b, false),
      bi = bias ? this.at(bias, false) : 0;
    const ws = scalesAt(kind, w, b); // q8, q4: the scales follow the quants
    const acc = g.accumulate ? 1 : 0;
    const pool = this.pool && m * q * p >= this.pool.splitProductsFrom ? this.pool : undefined;
    if (g.transB && !g.transA && m < MATVEC_MAX_M) {
      let xp = x,
        ldx = a.ld,
        post = 1,
        xsc = 0,
        scr = 0;
      if (kind === DT_F16) {
        xp = this.bump(m * q * 4);
        post = K.prep_f16x(xp, x, a.ld, m, q);
        ldx = q;
      } else if (kind === DT_BF16) {
        xp = this.bump(m * q * 4);
        K.prep_bf16x(xp, x, a.ld, m, q);
        ldx = q;
      } else if (kind === DT_Q8 || kind === DT_Q4) {
        // int8 x (reference/int8-activations.ts), held as int16 for matvec_q8 and the plain build's
        // matvec_q4 (rows of b.ld), then m x nb scales and m x nb block sums (times -8: q4's offset)
        const nb = b.ld >> 5,
          wide = kind === DT_Q8 ? 1 : K.q4_x_wide();
        xp = this.bump(m * b.ld * (1 + wide));
        xsc = this.bump(m * nb * 8);
        K.quant_x(xp, xsc, xsc + m * nb * 4, x, a.ld * 4, 4, m, q, b.ld, wide);
        // matvec_q4's four rows at a time keep b.ld / 2 bytes of products per thread
        if (kind === DT_Q4 && b.ld / 2 <= THREAD_SCRATCH_BYTES) scr = this.threadScratch();
      }
      if (pool) {
        pool.setI(MV.arena, this.tgt.id);
        pool.setI(MV.kind, kind);
        pool.setI(MV.out, o);
        pool.setI(MV.ldo, out.ld);
        pool.setI(MV.x, xp);
        pool.setI(MV.ldx, ldx);
        pool.setI(MV.w, w);
        pool.setI(MV.ldw, b.ld);
        pool.setF(MV.post, post);
        pool.setI(MV.bias, bi);
        pool.setI(MV.m, m);
        pool.setI(MV.q, q);
        pool.setI(MV.acc, acc);
        pool.setI(MV.ws, ws);
        pool.setI(MV.xsc, xsc);
        pool.setI(MV.scratch, scr);
        pool.setI(MV.stride, THREAD_SCRATCH_BYTES);
        pool.run(OP_MATVEC, p, 8);
      } else if (kind === DT_Q8 || kind === DT_Q4)
        if (kind === DT_Q8) K.matvec_q8(o, out.ld, xp, xsc, w, ws, b.ld, bi, m, 0, p, acc);
        else K.matvec_q4(o, out.ld, xp, xsc, w, ws, b.ld, bi, m, 0, p, acc, scr);
      else
        (kind === DT_F32 ? K.matvec_f32 : kind === DT_F16 ? K.matvec_f16 : K.matvec_bf16)(
          o,
          out.ld,
          xp,
          ldx,
          w,
          b.ld,
          post,
          bi,
          m,
          q,
          0,
          p,
          acc,
        );
    } else {
      const rsa = g.transA ? 4 : a.ld * 4,
        csa = g.transA ? a.ld * 4 : 4;
      if (g.transB && (kind === DT_Q8 || kind === DT_Q4)) {
        // int8 x (reference/int8-activations.ts) for gemm_q: rows of b.ld int16 (q4 in the relaxed build:
        // int8), then its scales and (int8) its blocks' -8 sums
        const ldq = b.ld,
          wide = kind === DT_Q8 ? 1 : K.q4_x_wide(),
          nb = ldq >> 5;
        const xq = this.bump(m * ldq * (1 + wide) + m * nb * 8);
        const xs = xq + m * ldq * (1 + wide);
        K.quant_x(xq, xs, wide ? 0 : xs + m * nb * 4, x, rsa, csa, m, q, ldq, wide);
        x = xq;
      }
      const scratch = this.threadScratch();
      const pre = g.transB && !g.transA ? this.packedB(b, kind, q, p) : null;
      if (pool) {
        pool.setI(GM.pre, pre?.at ?? 0);
        pool.setI(GM.ldpre, pre?.ldpre ?? 0);
        pool.setI(GM.arena, this.tgt.id);
        pool.setI(GM.out, o);
        pool.setI(GM.ldo, out.ld);
        pool.setI(GM.a, x);
        pool.setI(GM.rsa, rsa);
        pool.setI(GM.csa, csa);
        pool.setI(GM.b, w);
        pool.setI(GM.bs, ws);
        pool.setI(GM.ldb, b.ld);
        pool.setI(GM.kind, kind);
        pool.setI(GM.transB, g.transB ? 1 : 0);
        pool.setI(GM.bias, bi);
        pool.setI(GM.m, m);
        pool.setI(GM.q, q);
        pool.setI(GM.acc, acc);
        pool.setI(GM.scratch, scratch);
        pool.setI(GM.stride, THREAD_SCRATCH_BYTES);
        pool.run(OP_GEMM, p, 8, 128);
      } else {
        const [at, ldpre] = pre ? [pre.at, pre.ldpre] : [0, 0];
        K.gemm(o, out.ld, x, rsa, csa, w, ws, b.ld, kind, g.transB ? 1 : 0, bi, m, q, 0, p, acc, scratch, at, ldpre);
      }
    }
    this.end();
    return true;
  }

  /** out (m, d) <- table[ids]; table f32/f16/bf16/q8/q4. */
  embedding(out: Tensor, ids: Tensor, table: Tensor, m: number, d: number): boolean {
    const kind = KIND[table.dtype];
    if (kind === undefined) return false;
    this.begin(table);
    const t = this.at(table, false);
    const ts = scalesAt(kind, t, table);
    this.K.gather_rows(this.at(out, true), out.ld, this.at(ids, false), m, t, ts, table.ld, kind, d);
    this.end();
    return true;
  }

  /** Fused residual add (x scaled by xScale) + RMSNorm; weight f32. */
  addRmsnorm(
    out: Tensor,
    residual: Tensor,
    x: Tensor | null,
    weight: Tensor,
    m: number,
    d: number,
    eps: number,
    xScale = 1,
  ): boolean {
    if (weight.dtype !== 'f32') return false;
    this.begin(residual);
    this.K.rmsnorm(
      this.at(out, true),
      out.ld,
      this.at(residual, true),
      residual.ld,
      x ? this.at(x, false) : 0,
      x ? x.ld : 0,
      this.at(weight, false),
      m,
      d,
      eps,
      xScale,
    );
    this.end();
    return true;
  }

  /** Causal depthwise conv1d (+ SiLU) with a carried state; all f32. */
  causalConv1d(
    out: Tensor,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    state: Tensor | null,
    b: number,
    l: number,
    e: number,
    k: number,
    silu: boolean,
  ): boolean {
    if (k > MAX_SCAN_STATE) return false;
    this.begin(x);
    const o = this.at(out, true),
      xp = this.at(x, false),
      w = this.at(weight, false),
      bi = bias ? this.at(bias, false) : 0;
    const st = state ? this.at(state, true) : 0,
      lds = state ? state.ld : 0;
    const scratch = this.threadScratch();
    if (this.pool && b * l * e * k >= 1 << 16) {
      const P = this.pool;
      P.setI(CV.arena, this.tgt.id);
      P.setI(CV.out, o);
      P.setI(CV.ldo, out.ld);
      P.setI(CV.x, xp);
      P.setI(CV.ldx, x.ld);
      P.setI(CV.w, w);
      P.setI(CV.ldw, weight.ld);
      P.setI(CV.bias, bi);
      P.setI(CV.state, st);
      P.setI(CV.lds, lds);
      P.setI(CV.b, b);
      P.setI(CV.l, l);
      P.setI(CV.e, e);
      P.setI(CV.k, k);
      P.setI(CV.silu, silu ? 1 : 0);
      P.setI(CV.scratch, scratch);
      P.setI(CV.stride, THREAD_SCRATCH_BYTES);
      P.run(OP_CONV, e, 4);
    } else this.K.conv1d(o, out.ld, xp, x.ld, w, weight.ld, bi, st, lds, b, l, e, k, silu ? 1 : 0, 0, e, scratch);
    this.end();
    return true;
  }

  /** The fused selective scan; all f32. */
  selectiveScan(s: SelectiveScanArgs, b: number, l: number, e: number, n: number): boolean {
    if (n > MAX_SCAN_STATE) return false;
    // the call runs where the largest operand lives: the state in decode, the sequences in prefill
    const big = [s.y, s.u, s.delta, s.hOut ?? s.y].reduce((x, t) => (t.size > x.size ? t : x));
    this.begin(big);
    const opt = (t: Tensor | null, out = false): number => (t ? this.at(t, out) : 0);
    const y = this.at(s.y, true),
      u = this.at(s.u, false),
      dl = this.at(s.delta, false),
      A = this.at(s.A, false),
      B = this.at(s.B, false),
      C = this.at(s.C, false);
    const D = opt(s.D),
      z = opt(s.z),
      db = opt(s.deltaBias);
    // h0 and hOut may be one tensor (the recurrent step): one address, staged in and out once
    const h0 = s.hOut && s.hOut === s.h0 ? this.at(s.h0, true) : opt(s.h0);
    const ho = s.hOut && s.hOut === s.h0 ? h0 : opt(s.hOut, true);
    const scratch = this.threadScratch();
    const sp = s.deltaSoftplus ? 1 : 0;
    const ldz = s.z ? s.z.ld : 0,
      ldh0 = s.h0 ? s.h0.ld : 0,
      ldho = s.hOut ? s.hOut.ld : 0;
    if (this.pool && b * l * e * n >= 1 << 13) {
      const P = this.pool;
      P.setI(SC.arena, this.tgt.id);
      P.setI(SC.y, y);
      P.setI(SC.ldy, s.y.ld);
      P.setI(SC.u, u);
      P.setI(SC.ldu, s.u.ld);
      P.setI(SC.dl, dl);
      P.setI(SC.lddl, s.delta.ld);
      P.setI(SC.A, A);
      P.setI(SC.ldA, s.A.ld);
      P.setI(SC.B, B);
      P.setI(SC.ldB, s.B.ld);
      P.setI(SC.C, C);
      P.setI(SC.ldC, s.C.ld);
      P.setI(SC.D, D);
      P.setI(SC.z, z);
      P.setI(SC.ldz, ldz);
      P.setI(SC.dbias, db);
      P.setI(SC.h0, h0);
      P.setI(SC.ldh0, ldh0);
      P.setI(SC.hout, ho);
      P.setI(SC.ldho, ldho);
      P.setI(SC.b, b);
      P.setI(SC.l, l);
      P.setI(SC.e, e);
      P.setI(SC.n, n);
      P.setI(SC.softplus, sp);
      P.setI(SC.scratch, scratch);
      P.setI(SC.stride, THREAD_SCRATCH_BYTES);
      P.run(OP_SCAN, e, 4);
    } else {
      this.K.selective_scan(
        y,
        s.y.ld,
        u,
        s.u.ld,
        dl,
        s.delta.ld,
        A,
        s.A.ld,
        B,
        s.B.ld,
        C,
        s.C.ld,
        D,
        z,
        ldz,
        db,
        h0,
        ldh0,
        ho,
        ldho,
        b,
        l,
        e,
        n,
        sp,
        0,
        e,
        scratch,
      );
    }
    this.end();
    return true;
  }

  /**
   * Mamba-2's SSD scan (ssd.wat): the chunked form, or the recurrent step for l = 1; split over the
   * pool by units (batch row, head), each unit computed by the same code whichever thread runs it.
   */
  ssdScan(s: SsdScanArgs, dims: SsdDims): boolean {
    const { b, l, h, p, g, n } = dims;
    const ts = [s.y, s.x, s.dt, s.A, s.B, s.C, s.D, s.dtBias, s.h0, s.hOut];
    if (ts.some((t) => t && t.dtype !== 'f32')) return false;
    if (l === 0 || b === 0) return true;
    const big = [s.y, s.x, s.hOut ?? s.y].reduce((x, t) => (t.size > x.size ? t : x));
    this.begin(big);
    const opt = (t: Tensor | null, out = false): number => (t ? this.at(t, out) : 0);
    const y = this.at(s.y, true),
      x = this.at(s.x, false),
      dt = this.at(s.dt, false),
      A = this.at(s.A, false),
      B = this.at(s.B, false),
      C = this.at(s.C, false);
    const D = opt(s.D),
      db = opt(s.dtBias);
    // h0 and hOut may be one tensor (the recurrent step): one address, staged in and out once
    const h0 = s.hOut && s.hOut === s.h0 ? this.at(s.h0, true) : opt(s.h0);
    const ho = s.hOut && s.hOut === s.h0 ? h0 : opt(s.hOut, true);
    const ldh0 = s.h0 ? s.h0.ld : 0,
      ldho = s.hOut ? s.hOut.ld : 0;
    const sp = s.dtSoftplus ? 1 : 0;
    const [lo, hi] = s.dtLimit;
    const units = b * h;
    const pool = this.pool && units > 1 && b * l * h * p * n >= 1 << 13 ? this.pool : undefined;
    const Q = Math.min(s.chunkSize, l, SSD_MAX_CHUNK);
    let state = 0,
      scratch = 0,
      per = 0;
    if (l > 1) {
      per = ssdScratchBytes(Q, n, p);
      state = this.bump(units * ((n + 3) & ~3) * ssdStateCols(p) * 4);
      scratch = this.bump((pool ? pool.threads : 1) * per);
    }
    if (pool) {
      const args: [number, number][] = [
        [SD.arena, this.tgt.id],
        [SD.y, y],
        [SD.ldy, s.y.ld],
        [SD.x, x],
        [SD.ldx, s.x.ld],
        [SD.dt, dt],
        [SD.lddt, s.dt.ld],
        [SD.A, A],
        [SD.B, B],
        [SD.ldB, s.B.ld],
        [SD.C, C],
        [SD.ldC, s.C.ld],
        [SD.D, D],
        [SD.dbias, db],
        [SD.h0, h0],
        [SD.ldh0, ldh0],
        [SD.hout, ho],
        [SD.ldho, ldho],
        [SD.b, b],
        [SD.l, l],
        [SD.h, h],
        [SD.p, p],
        [SD.g, g],
        [SD.n, n],
        [SD.softplus, sp],
        [SD.Q, Q],
        [SD.state, state],
        [SD.scratch, scratch],
        [SD.stride, per],
      ];
      for (const [k, v] of args) pool.setI(k, v);
      pool.setF(SD.dtMin, lo);
      pool.setF(SD.dtMax, hi);
      pool.run(OP_SSD, units);
    } else if (l === 1) {
      this.K.ssd_step(
        y,
        s.y.ld,
        x,
        s.x.ld,
        dt,
        s.dt.ld,
        A,
        B,
        s.B.ld,
        C,
        s.C.ld,
        D,
        db,
        h0,
        ldh0,
        ho,
        ldho,
        h,
        p,
        g,
        n,
        sp,
        lo,
        hi,
        0,
        units,
      );
    } else {
      this.K.ssd_scan(
        y,
        s.y.ld,
        x,
        s.x.ld,
        dt,
        s.dt.ld,
        A,
        B,
        s.B.ld,
        C,
        s.C.ld,
        D,
        db,
        h0,
        ldh0,
        ho,
        ldho,
        b,
        l,
        h,
        p,
        g,
        n,
        sp,
        lo,
        hi,
        Q,
        0,
        units,
        state,
        scratch,
      );
    }
    this.end();
    return true;
  }

  /**
   * Mamba-3's scan (mamba3.wat): each (batch row, head) walks its tokens from its state, so the decode
   * step is l = 1; split over the pool by those units. All f32, the small parameter tensors dense.
   * Without a state the scan starts from a zeroed one in scratch (and discards it).
   */
  mamba3Scan(a: Mamba3ScanArgs, b: number, l: number): boolean {
    const { h, p, n, g, R, S } = a.dims;
    const st = a.state;
    const small = [a.dtBias, a.BNorm, a.CNorm, a.BBias, a.CBias, a.D, a.mimoX, a.mimoZ, a.mimoO, a.normWeight];
    const all = [a.y, a.proj, ...small, st?.theta, st?.ssm, st?.k, st?.x];
    if (all.some((t) => t && t.dtype !== 'f32') || small.some((t) => t && !t.isContiguous)) return false;
    if (l === 0 || b === 0) return true;
    this.begin(a.proj.size >= a.y.size ? a.proj : a.y);
    const opt = (t: Tensor | null): number => (t ? this.at(t, false) : 0);
    // (address, ld) of the state tensors: the caller's, or zeros in scratch
    let theta: [number, number], ssm: [number, number], k: [number, number], x: [number, number];
    if (st) {
      theta = [this.at(st.theta, true), st.theta.ld];
      ssm = [this.at(st.ssm, true), st.ssm.ld];
      k = [this.at(st.k, true), st.k.ld];
      x = [this.at(st.x, true), st.x.ld];
    } else {
      const sizes = [b * h * S, b * h * p * n, b * R * h * n, b * h * p];
      const at = sizes.map((c) => this.bump(4 * c));
      sizes.forEach((c, i) => new Uint8Array(this.tgt.buffer(), at[i], 4 * c).fill(0));
      [theta, ssm, k, x] = [
        [at[0], S],
        [at[1], n],
        [at[2], n],
        [at[3], p],
      ];
    }
    const params = [
      this.at(a.y, true),
      a.y.ld,
      this.at(a.proj, false),
      a.proj.ld,
      this.at(a.dtBias, false),
      this.at(a.BNorm, false),
      this.at(a.CNorm, false),
      this.at(a.BBias, false),
      this.at(a.CBias, false),
      this.at(a.D, false),
      opt(a.mimoX),
      opt(a.mimoZ),
      opt(a.mimoO),
      opt(a.normWeight),
      ...theta,
      ...ssm,
      ...k,
      ...x,
      b,
      l,
      h,
      p,
      n,
      g,
      R,
      S,
      a.dims.rotateHalves ? 1 : 0,
      this.bump(8 * b * l * S), // π tanh(angles), filled by mamba3_angles
    ];
    // written after every address is taken (staging may grow the memory)
    const pb = this.bump(MAMBA3_PARAM_BYTES);
    new Int32Array(this.tgt.buffer(), pb, params.length).set(params);
    const F = new Float64Array(this.tgt.buffer(), pb + 128, 2);
    F[0] = a.dims.aFloor;
    F[1] = a.dims.eps;
    this.K.mamba3_angles(pb, 0, b * l);
    const units = b * h;
    const pool = this.pool && units > 1 && b * l * h * p * n * R >= 1 << 13 ? this.pool : undefined;
    const per = mamba3ScratchBytes(n, p, R, S);
    const scratch = this.bump((pool ? pool.threads : 1) * per);
    // blocks of tokens whose rows of proj (~256 KiB) stay in cache while every head reads them
    const T = Math.max(1, Math.floor((256 << 10) / (4 * a.proj.ld)));
    for (let t0 = 0; t0 < l; t0 += T) {
      const t1 = Math.min(l, t0 + T);
      if (pool) {
        pool.setI(M3.arena, this.tgt.id);
        pool.setI(M3.params, pb);
        pool.setI(M3.scratch, scratch);
        pool.setI(M3.stride, per);
        pool.setI(M3.t0, t0);
        pool.setI(M3.t1, t1);
        pool.run(OP_MAMBA3, units);
      } else this.K.mamba3_scan(pb, 0, units, scratch, t0, t1);
    }
    this.end();
    return true;
  }

  /**
   * Mamba-3's scan backward (mamba3-backward.wat), split over the pool by (batch row, head): each unit
   * recomputes its states chunk by chunk and leaves what heads share as f64 partials, which
   * mamba3BwdReduce adds up in a fixed order (the result does not depend on the number of threads).
   * All f32, the small tensors and their gradients dense.
   */
  mamba3ScanBackward(a: Mamba3ScanBackwardArgs, b: number, l: number): boolean {
    const { h, p, n, g, R, S } = a.dims;
    const small = [a.dtBias, a.BNorm, a.CNorm, a.BBias, a.CBias, a.D, a.mimoX, a.mimoZ, a.mimoO, a.normWeight];
    const dSmall = [
      a.dDtBias,
      a.dBNorm,
      a.dCNorm,
      a.dBBias,
      a.dCBias,
      a.dD,
      a.dMimoX,
      a.dMimoZ,
      a.dMimoO,
      a.dNormWeight,
    ];
    const all = [a.g, a.proj, a.dProj, ...small, ...dSmall];
    if (all.some((t) => t && t.dtype !== 'f32') || [...small, ...dSmall].some((t) => t && !t.isContiguous))
      return false;
    if (l === 0 || b === 0) return true;
    this.begin(a.proj);
    const opt = (t: Tensor | null, out = false): number => (t ? this.at(t, out) : 0);
    // the batch in blocks of rows whose partials (l (2 R n + S) + ... f64 per unit) fit in 64 MiB
    const PU = mamba3BwdPartialElems(l, a.dims);
    const rows = Math.max(1, Math.min(b, Math.floor((64 << 20) / (8 * h * PU))));
    const params = [
      this.at(a.g, false),
      a.g.ld,
      this.at(a.proj, false),
      a.proj.ld,
      this.at(a.dtBias, false),
      this.at(a.BNorm, false),
      this.at(a.CNorm, false),
      this.at(a.BBias, false),
      this.at(a.CBias, false),
      this.at(a.D, false),
      opt(a.mimoX),
      opt(a.mimoZ),
      opt(a.mimoO),
      opt(a.normWeight),
      this.at(a.dProj, true),
      a.dProj.ld,
      this.bump(8 * rows * h * PU),
      mamba3BwdChunk(l),
      b,
      l,
      h,
      p,
      n,
      g,
      R,
      S,
      a.dims.rotateHalves ? 1 : 0,
      0, // u0, per block
    ];
    const dOut = dSmall.map((t) => opt(t, true));
    const pool = this.pool && rows * h > 1 && rows * l * h * p * n * R >= 1 << 12 ? this.pool : undefined;
    const per = mamba3BwdScratchBytes(l, a.dims);
    const scratch = this.bump((pool ? pool.threads : 1) * per);
    // written after every address is taken (staging may grow the memory)
    const pb = this.bump(128);
    const I = new Int32Array(this.tgt.buffer(), pb, params.length);
    I.set(params);
    const F = new Float64Array(this.tgt.buffer(), pb + 112, 2);
    F[0] = a.dims.aFloor;
    F[1] = a.dims.eps;
    const w = (i: number): number => (dOut[i] ? dOut[i] >>> 2 : -1);
    const out = {
      proj: params[2] >>> 2,
      ldp: a.proj.ld,
      dProj: params[14] >>> 2,
      lddp: a.dProj.ld,
      BNorm: params[5] >>> 2,
      CNorm: params[6] >>> 2,
      dDtBias: w(0),
      dBNorm: w(1),
      dCNorm: w(2),
      dBBias: w(3),
      dCBias: w(4),
      dD: w(5),
      dMimoX: w(6),
      dMimoZ: w(7),
      dMimoO: w(8),
      dNormWeight: w(9),
    };
    const sums = mamba3BwdSums(a.dims);
    const buf = this.tgt.buffer();
    const F32 = new Float32Array(buf),
      F64 = new Float64Array(buf);
    for (let b0 = 0; b0 < b; b0 += rows) {
      const b1 = Math.min(b, b0 + rows);
      I[27] = b0 * h;
      if (pool) {
        pool.setI(M3B.arena, this.tgt.id);
        pool.setI(M3B.params, pb);
        pool.setI(M3B.scratch, scratch);
        pool.setI(M3B.stride, per);
        pool.run(OP_MAMBA3_BWD, (b1 - b0) * h);
      } else this.K.mamba3_bwd(pb, 0, (b1 - b0) * h, scratch);
      mamba3BwdReduce(F32, F64, params[16] >>> 3, out, sums, b0, b1, l, a.dims);
    }
    mamba3BwdStore(F32, out, sums, a.dims);
    this.end();
    return true;
  }

  /**
   * Causal softmax attention (attention.wat), one query row per unit, split over the pool by units
   * (batch row, head, position); each thread keeps its row's scores and value sums in its own scratch.
   * All f32; d as checkAttention returns it.
   */
  attention(a: AttentionArgs, d: AttentionDims): boolean {
    if ([a.out, a.q, a.k, a.v].some((t) => t.dtype !== 'f32')) return false;
    const { b, lq, lk, H, G, dk, dv, keys } = d;
    if (b * H * lq === 0) return true;
    // prefill: four query rows a unit (attention-prefill.wat), each key and value row loaded once for
    // four; key counts per sequence (rowKeys) go through attention_rows_lens, one query row a unit
    const rows4 = lq >= 4 && !d.rowKeys;
    const units = rows4 ? b * H * Math.ceil(lq / 4) : b * H * lq;
    this.begin(a.k.size >= a.q.size ? a.k : a.q);
    const out = this.at(a.out, true),
      q = this.at(a.q, false),
      k = this.at(a.k, false),
      v = this.at(a.v, false);
    const per = rows4 ? 16 * ((keys + 3) & ~3) + 64 : (((keys + 3) & ~3) + ((dv + 3) & ~3)) * 4 + 64;
    const pool = this.pool && units > 1 && units * keys * (dk + dv) >= 1 << 16 ? this.pool : undefined;
    const scratch = this.bump((pool ? pool.threads : 1) * per);
    // a key count per sequence (d.keys is their maximum): attention_rows_lens reads them from the arena
    let lens = 0;
    if (d.rowKeys) {
      lens = this.bump(4 * b);
      new Int32Array(this.tgt.buffer(), lens, b).set(d.rowKeys);
    }
    if (pool) {
      const args: [number, number][] = [
        [AT.arena, this.tgt.id],
        [AT.out, out],
        [AT.ldo, a.out.ld],
        [AT.q, q],
        [AT.ldq, a.q.ld],
        [AT.k, k],
        [AT.ldk, a.k.ld],
        [AT.v, v],
        [AT.ldv, a.v.ld],
        [AT.lq, lq],
        [AT.lk, lk],
        [AT.H, H],
        [AT.G, G],
        [AT.dk, dk],
        [AT.dv, dv],
        [AT.keys, keys],
        [AT.scratch, scratch],
        [AT.stride, per],
        [AT.lens, lens],
      ];
      for (const [key, val] of args) pool.setI(key, val);
      pool.setF(AT.scale, a.scale);
      pool.run(rows4 ? OP_ATTN4 : OP_ATTN, units);
    } else {
      (lens ? this.K.attention_rows_lens : rows4 ? this.K.attention_rows4 : this.K.attention_rows)(
        out,
        a.out.ld,
        q,
        a.q.ld,
        k,
        a.k.ld,
        v,
        a.v.ld,
        lq,
        lk,
        H,
        G,
        dk,
        dv,
        lens || keys,
        a.scale,
        scratch,
        0,
        units,
      );
    }
    this.end();
    return true;
  }

  /** The conv1d's gradient without a state (conv1d-backward.wat), split over the pool by channels; all f32. */
  causalConv1dBackward(a: CausalConv1dBackwardArgs, b: number, l: number, e: number, k: number): boolean {
    this.begin(a.x);
    const dx = this.at(a.dx, true),
      dw = this.at(a.dWeight, true),
      db = a.dBias ? this.at(a.dBias, true) : 0;
    const g = this.at(a.g, false),
      x = this.at(a.x, false),
      w = this.at(a.weight, false),
      bias = a.bias ? this.at(a.bias, false) : 0;
    const par = this.pool && b * l * e * k >= 1 << 15 && e > 4;
    const per = Math.ceil((16 * (3 * k + l)) / 64) * 64;
    const scratch = this.bump((par ? this.pool!.threads : 1) * per);
    const silu = a.silu ? 1 : 0;
    if (par) {
      const P = this.pool!;
      const args: [number, number][] = [
        [CB.arena, this.tgt.id],
        [CB.dx, dx],
        [CB.lddx, a.dx.ld],
        [CB.dw, dw],
        [CB.lddw, a.dWeight.ld],
        [CB.dbias, db],
        [CB.g, g],
        [CB.ldg, a.g.ld],
        [CB.x, x],
        [CB.ldx, a.x.ld],
        [CB.w, w],
        [CB.ldw, a.weight.ld],
        [CB.bias, bias],
        [CB.b, b],
        [CB.l, l],
        [CB.e, e],
        [CB.k, k],
        [CB.silu, silu],
        [CB.scratch, scratch],
        [CB.stride, per],
      ];
      for (const [slot, v] of args) P.setI(slot, v);
      P.run(OP_CONV_BWD, e, 4);
    } else
      this.K.conv1d_bwd(
        dx,
        a.dx.ld,
        dw,
        a.dWeight.ld,
        db,
        g,
        a.g.ld,
        x,
        a.x.ld,
        w,
        a.weight.ld,
        bias,
        b,
        l,
        e,
        k,
        silu,
        0,
        e,
        scratch,
      );
    this.end();
    return true;
  }

  /**
   * The selective scan's gradient (scan-backward.wat), split over the pool by batch rows. Each row
   * leaves partial dA, dD, dDeltaBias (sums over its time steps) in scratch; they are added here in
   * row order (f64), so the result does not depend on the number of threads.
   */
  selectiveScanBackward(
    s: SelectiveScanBackwardArgs,
    b: number,
    l: number,
    e: number,
    n: number,
    chunk: number,
  ): boolean {
    const T = Math.max(1, Math.min(chunk, l));
    const big = [s.dy, s.u, s.du, s.dDelta].reduce((x, t) => (t.size > x.size ? t : x));
    this.begin(big);
    const opt = (t: Tensor | null, out = false): number => (t ? this.at(t, out) : 0);
    const dy = this.at(s.dy, false),
      u = this.at(s.u, false),
      dl = this.at(s.delta, false),
      A = this.at(s.A, false),
      B = this.at(s.B, false),
      C = this.at(s.C, false);
    const D = opt(s.D),
      z = opt(s.z),
      db = opt(s.deltaBias),
      h0 = opt(s.h0);
    const du = this.at(s.du, true),
      ddl = this.at(s.dDelta, true),
      dB = this.at(s.dB, true),
      dC = this.at(s.dC, true);
    const dz = opt(s.dz, true),
      dh0 = opt(s.dh0, true);
    const dA = this.at(s.dA, true),
      dD = opt(s.dD, true),
      dDb = opt(s.dDeltaBias, true);
    const pA = this.bump(b * e * n * 4),
      pD = this.bump(b * e * 4),
      pB = this.bump(b * e * 4);
    const threads = this.pool && b > 1 && b * l * e * n >= 1 << 13 ? this.pool.threads : 1;
    const per = scanBackwardScratchBytes(l, n, T);
    const scratch = this.bump(threads * per);
    const sp = s.deltaSoftplus ? 1 : 0;
    const ldz = s.z ? s.z.ld : 0,
      ldh0 = s.h0 ? s.h0.ld : 0,
      lddz = s.dz ? s.dz.ld : 0,
      lddh0 = s.dh0 ? s.dh0.ld : 0;
    if (threads > 1) {
      const P = this.pool!;
      const args: [number, number][] = [
        [SB.arena, this.tgt.id],
        [SB.dy, dy],
        [SB.lddy, s.dy.ld],
        [SB.u, u],
        [SB.ldu, s.u.ld],
        [SB.dl, dl],
        [SB.lddl, s.delta.ld],
        [SB.A, A],
        [SB.ldA, s.A.ld],
        [SB.B, B],
        [SB.ldB, s.B.ld],
        [SB.C, C],
        [SB.ldC, s.C.ld],
        [SB.D, D],
        [SB.z, z],
        [SB.ldz, ldz],
        [SB.dbias, db],
        [SB.h0, h0],
        [SB.ldh0, ldh0],
        [SB.du, du],
        [SB.lddu, s.du.ld],
        [SB.ddl, ddl],
        [SB.ldddl, s.dDelta.ld],
        [SB.dB, dB],
        [SB.lddB, s.dB.ld],
        [SB.dC, dC],
        [SB.lddC, s.dC.ld],
        [SB.dz, dz],
        [SB.lddz, lddz],
        [SB.dh0, dh0],
        [SB.lddh0, lddh0],
        [SB.pA, pA],
        [SB.pD, pD],
        [SB.pbias, pB],
        [SB.l, l],
        [SB.e, e],
        [SB.n, n],
        [SB.softplus, sp],
        [SB.T, T],
        [SB.scratch, scratch],
        [SB.stride, per],
      ];
      for (const [k, v] of args) P.setI(k, v);
      P.run(OP_SCAN_BWD, b, 1, 1);
    } else {
      this.K.selective_scan_bwd(
        dy,
        s.dy.ld,
        u,
        s.u.ld,
        dl,
        s.delta.ld,
        A,
        s.A.ld,
        B,
        s.B.ld,
        C,
        s.C.ld,
        D,
        z,
        ldz,
        db,
        h0,
        ldh0,
        du,
        s.du.ld,
        ddl,
        s.dDelta.ld,
        dB,
        s.dB.ld,
        dC,
        s.dC.ld,
        dz,
        lddz,
        dh0,
        lddh0,
        pA,
        pD,
        pB,
        l,
        e,
        n,
        sp,
        T,
        0,
        b,
        scratch,
      );
    }
    // the batch sums of the rows' partials, in row order
    const F32 = new Float32Array(this.tgt.buffer());
    const sumRows = (src: number, width: number, dst: number, ld: number, rows: number): void => {
      const cols = width / rows;
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < cols; j++) {
          let acc = 0;
          for (let bi = 0; bi < b; bi++) acc += F32[(src >>> 2) + bi * width + r * cols + j];
          F32[(dst >>> 2) + r * ld + j] = acc;
        }
      }
    };
    sumRows(pA, e * n, dA, s.dA.ld, e);
    if (dD) sumRows(pD, e, dD, e, 1);
    if (dDb) sumRows(pB, e, dDb, e, 1);
    this.end();
    return true;
  }

  /**
   * Each row's max and log-sum-exp of x - max (xent.wat, then the logs here), at st: two f32 per
   * row. The current call's arena must hold the logits (address x).
   */
  private rowLogSumExp(x: number, ldx: number, m: number, V: number): number {
    const st = this.bump(m * 8);
    this.K.row_max_sumexp(x, ldx, m, V, st);
    const F = new Float32Array(this.tgt.buffer(), st, 2 * m);
    for (let i = 0; i < m; i++) F[2 * i + 1] = Math.log(F[2 * i + 1]);
    return st;
  }

  /** Cross-entropy of logits (m, V) f32 against targets (m) i32 -> out (1): the row passes in WebAssembly. */
  crossEntropy(out: Tensor, logits: Tensor, targets: Tensor, m: number, V: number, reduction: LossReduction): boolean {
    this.begin(logits);
    const x = this.at(logits, false);
    const st = this.rowLogSumExp(x, logits.ld, m, V);
    const buf = this.tgt.buffer();
    const S = new Float32Array(buf, st, 2 * m),
      X = new Float32Array(buf);
    const T = targets.storage as Int32Array;
    let sum = 0,
      count = 0;
    for (let i = 0; i < m; i++) {
      const t = targetOf(T, targets.offset + i, V, i);
      if (t < 0) continue;
      sum += S[2 * i] + S[2 * i + 1] - X[(x >>> 2) + i * logits.ld + t];
      count++;
    }
    new Float32Array(buf, this.at(out, true), 1)[0] = reduction === 'sum' ? sum : count > 0 ? sum / count : 0;
    this.end();
    return true;
  }

  /** Its gradient: dLogits <- scale (softmax - onehot), zero rows for ignored targets. */
  crossEntropyBackward(
    dLogits: Tensor,
    logits: Tensor,
    targets: Tensor,
    g: number,
    m: number,
    V: number,
    reduction: LossReduction,
  ): boolean {
    const T = targets.storage as Int32Array;
    let count = 0;
    for (let i = 0; i < m; i++) if (targetOf(T, targets.offset + i, V, i) >= 0) count++;
    const scale = g * (reduction === 'sum' ? 1 : count > 0 ? 1 / count : 0);
    this.begin(logits);
    const x = this.at(logits, false),
      dx = this.at(dLogits, true);
    const st = this.rowLogSumExp(x, logits.ld, m, V);
    this.K.softmax_rows(dx, dLogits.ld, x, logits.ld, m, V, st, scale);
    const D = new Float32Array(this.tgt.buffer());
    for (let i = 0; i < m; i++) {
      const t = T[targets.offset + i],
        o = (dx >>> 2) + i * dLogits.ld;
      if (t < 0) D.fill(0, o, o + V);
      else D[o + t] = D[o + t] - scale;
    }
    this.end();
    return true;
  }

  /** out[r] <- argmax of row r of x (f32). */
  argmax(out: Tensor, x: Tensor): boolean {
    this.begin(x);
    this.K.argmax(this.at(out, true), this.at(x, false), x.ld, x.rows, x.cols);
    this.end();
    return true;
  }

  /** out <- a (op) b, b of a's shape or one broadcast row; all f32. */
  binary(op: BinaryOp, out: Tensor, a: Tensor, b: Tensor, broadcast: boolean): boolean {
    const kind = op === 'add' ? 0 : op === 'sub' ? 1 : op === 'mul' ? 2 : 3;
    this.begin(a);
    this.K.binary(
      kind,
      this.at(out, true),
      out.ld,
      this.at(a, false),
      a.ld,
      this.at(b, false),
      broadcast ? 0 : b.ld,
      a.rows,
      a.cols,
      broadcast ? 1 : 0,
    );
    this.end();
    return true;
  }

  /** Elements from which a gating kernel (gated.wat) is split over the pool by rows. */
  private gatedOnPool(rows: number, cols: number): ThreadPool | undefined {
    return this.pool && rows > 1 && rows * cols >= 1 << 15 ? this.pool : undefined;
  }

  /** out <- silu(x) (gated.wat); false for other ops and dtypes (the reference runs them). */
  unary(op: UnaryOp, out: Tensor, x: Tensor): boolean {
    if (op !== 'silu' || out.dtype !== 'f32' || x.dtype !== 'f32') return false;
    const rows = x.rows,
      cols = x.cols;
    if (rows * cols === 0) return true;
    this.begin(x);
    const o = this.at(out, true),
      xp = this.at(x, false);
    const pool = this.gatedOnPool(rows, cols);
    if (pool) {
      pool.setI(GT.arena, this.tgt.id);
      pool.setI(GT.kind, 0);
      pool.setI(GT.out, o);
      pool.setI(GT.ldo, out.ld);
      pool.setI(GT.x, xp);
      pool.setI(GT.ldx, x.ld);
      pool.setI(GT.cols, cols);
      pool.run(OP_GATED, rows);
    } else this.K.silu_rows(o, out.ld, xp, x.ld, 0, rows, cols);
    this.end();
    return true;
  }

  /** Mamba-2's gated RMSNorm (gated.wat), m rows of width e; all f32. */
  gatedRmsnorm(
    out: Tensor,
    x: Tensor,
    z: Tensor | null,
    weight: Tensor,
    m: number,
    e: number,
    groupSize: number,
    eps: number,
    normBeforeGate: boolean,
  ): boolean {
    if ([out, x, z ?? x, weight].some((t) => t.dtype !== 'f32')) return false;
    if (m * e === 0) return true;
    this.begin(x);
    const o = this.at(out, true),
      xp = this.at(x, false),
      zp = z ? this.at(z, false) : 0,
      w = this.at(weight, false);
    const pool = this.gatedOnPool(m, e);
    if (pool) {
      const args: [number, number][] = [
        [GT.arena, this.tgt.id],
        [GT.kind, 1],
        [GT.out, o],
        [GT.ldo, out.ld],
        [GT.x, xp],
        [GT.ldx, x.ld],
        [GT.z, zp],
        [GT.ldz, z ? z.ld : 0],
        [GT.w, w],
        [GT.cols, e],
        [GT.gs, groupSize],
        [GT.nbg, normBeforeGate ? 1 : 0],
      ];
      for (const [key, val] of args) pool.setI(key, val);
      pool.setF(GT.eps, eps);
      pool.run(OP_GATED, m);
    } else
      this.K.gated_rmsnorm(o, out.ld, xp, x.ld, zp, z ? z.ld : 0, w, 0, m, e, groupSize, eps, normBeforeGate ? 1 : 0);
    this.end();
    return true;
  }

  /**
   * Quantises the first n rows of src (f32, f16 or bf16, contiguous; n = all of them by default) into
   * rows [r0, r0 + n) of the q4 / q8 tensor
   * dst (quantize.wat: the references' bytes), split over the pool by rows. Returns false, having written
   * every block, when a block held inf or NaN or (q4) a weight past the f16 scale's range: the caller
   * then runs the reference on the values, for its error or its handling of them.
   */
  quantize(dst: Tensor, src: Tensor, r0 = 0, rows = src.rows): boolean {
    const cols = dst.cols;
    const kind = src.dtype === 'f32' ? 0 : src.dtype === 'f16' ? 1 : src.dtype === 'bf16' ? 2 : -1;
    if (
      kind < 0 ||
      !src.isContiguous ||
      src.cols !== cols ||
      rows > src.rows ||
      r0 < 0 ||
      r0 + rows > dst.rows ||
      !isQuantized(dst.dtype)
    )
      fail('BAD_ARGUMENT', `quantize: ${src.toString()} into rows from ${r0} of ${dst.toString()}`);
    if (rows * cols === 0) return true;
    const q4 = dst.dtype === 'q4';
    const L = q4 ? q4Layout(dst.rows, cols) : q8Layout(dst.rows, cols);
    this.begin(dst);
    const base = this.at(dst, true),
      sp = this.at(src, false);
    // rows r0.. of the quants and of the scales (q4: ld / 2 bytes and nb f16 a row; q8: ld and nb f32)
    const qd = base + (q4 ? (r0 * L.ld) >> 1 : r0 * L.ld),
      sd = base + L.scaleOffset + r0 * L.nb * (q4 ? 2 : 4);
    const pool = this.gatedOnPool(rows, cols);
    if (pool) {
      const args: [number, number][] = [
        [GT.arena, this.tgt.id],
        [GT.kind, q4 ? 2 : 3],
        [GT.out, qd],
        [GT.z, sd],
        [GT.x, sp],
        [GT.ldx, kind],
        [GT.cols, cols],
      ];
      for (const [key, val] of args) pool.setI(key, val);
      pool.run(OP_GATED, rows);
    } else if (q4) this.K.quantize_q4(qd, sd, sp, kind, cols, 0, rows);
    else this.K.quantize_q8(qd, sd, sp, kind, cols, 0, rows);
    // the marker scales of blocks the kernel did not quantise (never those of finite weights in range)
    const mem = this.tgt.buffer();
    const nScales = rows * L.nb;
    let ok = true;
    if (q4) {
      const sc = new Uint16Array(mem, sd, nScales);
      for (let i = 0; i < nScales; i++)
        if ((sc[i] & 0x7c00) === 0x7c00) {
          ok = false;
          break;
        }
    } else {
      const sc = new Float32Array(mem, sd, nScales);
      for (let i = 0; i < nScales; i++)
        if (sc[i] === Infinity) {
          ok = false;
          break;
        }
    }
    this.end();
    return ok;
  }

  /** Reads all of t (f32, a whole number of MiB) on every thread; returns the seconds it took. */
  streamRead(t: Tensor): number {
    this.begin(t);
    const base = this.at(t, false);
    const mib = Math.floor((t.size * 4) / (1 << 20));
    const t0 = performance.now();
    if (this.pool) {
      this.pool.setI(ST.arena, this.tgt.id);
      this.pool.setI(ST.base, base);
      this.pool.run(OP_STREAM, mib);
    } else this.K.stream_read(base, mib << 20);
    const dt = (performance.now() - t0) / 1000;
    this.end();
    return dt;
  }
}
