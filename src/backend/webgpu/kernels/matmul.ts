import { type MatmulOptions, checkElementwise } from '../../contract/inference.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { GpuStorage } from '../gpu-buffers.js';
import type { KernelHost } from '../kernel-host.js';
import { fill } from './copy.js';
import { binary } from './elementwise.js';
import { dcode, q4Scales, withConsts } from './launch.js';
import * as W from './wgsl.gen.js';

/** The matmul kernel with its tile constants substituted. */
function tiled(bm: number, bn: number, bk: number, tm: number, tn: number) {
  const code = withConsts('matmul', W.matmul.code, { BM: bm, BN: bn, BK: bk, TM: tm, TN: tn });
  return { kernel: kernel(W.matmul, 'main', { code }), bm, bn };
}
const SMALL = tiled(64, 64, 16, 4, 4);
const BIG = tiled(128, 128, 8, 8, 8);
/** The 128 x 128 tile with its 8 x 8 blocks in named registers and the next k slice prefetched. */
const WIDE = { kernel: kernel(W.matmul, 'wide'), bm: 128, bn: 128 };
/** The 64 x 64 tile with its 4 x 4 blocks in named registers and the next k slice prefetched. */
const NARROW = { kernel: kernel(W.matmul, 'narrow'), bm: 64, bn: 64 };
/**
 * Workgroups the 128 x 128 tiling must still give (a large GPU has 100+ SMs) to be chosen: 48, or 192
 * for products with a transposed a (the weight gradients dY^T X), which read a down its columns. On
 * the H100, every product of a mamba-130m training step, both tiles in one call
 * (bench/results/gpu-h100-2026-12-07d, `webgpu-matmul.js --compare tiles --products train`): the 128
 * tile wins from ~96 workgroups for x W^T and dY W (5.4 vs 25.2 ms on lm_head), while the 64 tile
 * still wins the weight gradients at 72 and 144 (0.74 vs 0.98, 0.38 vs 0.52 ms).
 */
const BIG_TILE_MIN_GROUPS = 48;
const BIG_TILE_MIN_GROUPS_TRANS_A = 192;
const MATVEC = kernel(W.matvec, 'main');
/** The same kernel with the pre-norm prologue, under its own name in profiles. */
const MATVEC_NORM = kernel(W.matvec, 'main', { name: 'matvec+rmsnorm' });
/** With the SwiGLU prologue, and with Mamba-2's gated norm: their own names in profiles. */
const MATVEC_GLU = kernel(W.matvec, 'main', { name: 'matvec+swiglu' });
const MATVEC_GATE = kernel(W.matvec, 'main', { name: 'matvec+gated-norm' });

/** Rows of x up to which the Linear layout runs as matrix-vector products (weights read once per 4 rows). */
export const MATVEC_MAX_M = 8;
/** Workgroups a matrix-vector product should at least spread over (two per SM of a large GPU). */
const MATVEC_MIN_GROUPS = 256;

export function matmul(
  bk: KernelHost,
  out: Tensor,
  a: Tensor,
  b: Tensor,
  o: MatmulOptions,
  m: number,
  q: number,
  p: number,
): void {
  if (m === 0 || p === 0) return;
  const bias = o.bias ?? null;
  if (q === 0) {
    // empty inner dimension: out = [out +] bias (or 0)
    if (!o.accumulate) fill(bk, out, 0);
    if (bias) {
      checkElementwise('add', out, out, bias);
      binary(bk, 'add', out, out, bias);
    }
    return;
  }
  if (o.transB && !o.transA && a.dtype === 'f32' && m <= MATVEC_MAX_M) {
    matvec(bk, out, a, b, bias, !!o.accumulate, m, q, p, null, null);
    return;
  }
  const ta = dcode(a.dtype),
    tb = dcode(b.dtype),
    bt = bias ? dcode(bias.dtype) : 0;
  // 128 x 128 tiles (8 x 8 per thread) when the product still spreads over enough workgroups
  const forced = bk.options.matmulTile;
  const groups128 = Math.ceil(m / 128) * Math.ceil(p / 128);
  const minGroups = o.transA ? BIG_TILE_MIN_GROUPS_TRANS_A : BIG_TILE_MIN_GROUPS;
  const big = forced ? forced === 128 : !bk.d.g.cpuAdapter && groups128 >= minGroups;
  const regs = bk.options.matmulRegisters;
  const tile = big ? (regs ? WIDE : BIG) : regs ? NARROW : SMALL;
  const key = `matmul:${big}:${regs}:${ta}:${tb}:${bt}:${!!o.transA}:${!!o.transB}`;
  const consts = { TA: ta, TB: tb, BT: bt, TRANS_A: o.transA ? 1 : 0, TRANS_B: o.transB ? 1 : 0 };
  const pipe = bk.d.pipe(key, tile.kernel, consts);
  bk.d.run(
    pipe,
    { a: bk.buf(a), b: bk.buf(b), bias: bias ? bk.buf(bias) : bk.dummyR, o: bk.buf(out) },
    {
      m,
      q,
      p,
      aoff: a.offset,
      ald: a.ld,
      boff: b.offset,
      bld: b.ld,
      biasoff: bias?.offset ?? 0,
      ooff: out.offset,
      old: out.ld,
      has_bias: bias ? 1 : 0,
      acc: o.accumulate ? 1 : 0,
      bsoff: q4Scales(b),
    },
    Math.ceil(p / tile.bn),
    Math.ceil(m / tile.bm),
  );
}

/** The fused conv step of `matvec` (Mamba in_proj, EPI 1). */
export interface ConvEpilogue {
  e: number;
  weight: Tensor; // (e, k) f32
  bias: Tensor | null; // (e) f32
  state: Tensor; // (m, e, k) f32
}

/**
 * The fused pre-norm of `matvec` (a residual block's RMSNorm): the product is taken with
 * rmsnorm(x) · weight = x · rsqrt(mean(x²) + eps) · weight, row by row, instead of x.
 */
export interface NormPrologue {
  weight: Tensor; // (q) any float
  eps: number;
}

/**
 * The rest of `matvec`'s fusions (fusedLinear): `alpha` scales the product added into out (ACC); `convFrom`
 * is the first output column of the conv epilogue's channels (EPI 1; default 0); `prologue` replaces x by
 * silu(gate) · up ('glu': x (m, 2q) = [gate | up]) or by x · silu(z) ('gate', with the norm prologue:
 * Mamba-2's gated RMSNorm of one group, the norm after the gate or, `normBeforeGate`, of x alone).
 */
export interface MatvecFusion {
  alpha?: number;
  convFrom?: number;
  prologue?: { kind: 'glu' } | { kind: 'gate'; z: Tensor; normBeforeGate: boolean } | null;
}

/**
 * out (m, p) <- [out +] x (m, q) · W (p, q)^T [+ bias]. The 16-byte path needs W rows and x rows on
 * 16-byte boundaries (4 f32 or 8 halves; q4: 32 quants), q a multiple of that and the norm weight (if any) starting
 * on a multiple of 4 elements; otherwise a scalar path runs.
 */
export function matvec(
  bk: KernelHost,
  out: Tensor,
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  acc: boolean,
  m: number,
  q: number,
  p: number,
  conv: ConvEpilogue | null,
  norm: NormPrologue | null,
  f: MatvecFusion = {},
): void {
  const pro = f.prologue ?? null;
  const proCode = !pro ? 0 : pro.kind === 'glu' ? 1 : pro.normBeforeGate ? 3 : 2;
  const z = pro?.kind === 'gate' ? pro.z : null;
  const t = dcode(w.dtype),
    bt = bias ? dcode(bias.dtype) : 0,
    nt = norm ? dcode(norm.weight.dtype) : 0;
  const per = t === 0 ? 4 : t === 3 ? 32 : 8; // q4: whole blocks (W rows are padded to them)
  const vec =
    w.offset % per === 0 &&
    (w.ld % per === 0 || p === 1) &&
    q % per === 0 &&
    x.offset % 4 === 0 &&
    (x.ld % 4 === 0 || m === 1) &&
    (!norm || norm.weight.offset % 4 === 0);
  // (the gate's z is read as scalars: any offset)
  const epi = conv ? 1 : 0;
  // W rows per workgroup: 8 (32 threads per row) unless that leaves fewer than ~2 workgroups per SM
  let R = bk.options.matvecRows;
  if (!R) {
    R = 8;
    while (!bk.d.g.cpuAdapter && R > 1 && Math.ceil(p / R) < MATVEC_MIN_GROUPS) R >>= 1;
  }
  const U = bk.options.matvecUnroll;
  const key = `matvec:${t}:${bt}:${vec}:${!!bias}:${acc}:${epi}:${!!conv?.bias}:${R}:${norm ? nt : '-'}:${proCode}:${U}`;
  const k = proCode === 1 ? MATVEC_GLU : proCode ? MATVEC_GATE : norm ? MATVEC_NORM : MATVEC;
  const pipe = bk.d.pipe(key, k, {
    T: t,
    BT: bt,
    VEC: vec ? 1 : 0,
    HAS_BIAS: bias ? 1 : 0,
    ACC: acc ? 1 : 0,
    EPI: epi,
    CONV_BIAS: conv?.bias ? 1 : 0,
    R,
    NORM: norm ? 1 : 0,
    NT: nt,
    PRO: proCode,
    U,
  });
  let cw: GpuStorage = bk.dummyR,
    cb: GpuStorage = bk.dummyR,
    cs: GpuStorage = bk.dummyW;
  if (z) cw = bk.buf(z);
  if (conv) {
    cw = bk.buf(conv.weight);
    if (conv.bias) cb = bk.buf(conv.bias);
    cs = bk.buf(conv.state);
  }
  bk.d.run(
    pipe,
    {
      W: bk.buf(w),
      x: bk.buf(x),
      bias: bias ? bk.buf(bias) : bk.dummyR,
      o: bk.buf(out),
      cw,
      cb,
      cs,
      nw: norm ? bk.buf(norm.weight) : bk.dummyR,
    },
    {
      m,
      q,
      p,
      xoff: x.offset,
      xld: x.ld,
      woff: w.offset,
      wld: w.ld,
      boff: bias?.offset ?? 0,
      ooff: out.offset,
      old: out.ld,
      e: conv?.e ?? 0,
      k: conv?.weight.cols ?? 0,
      cwoff: conv?.weight.offset ?? 0,
      cwld: conv?.weight.ld ?? 0,
      cboff: conv?.bias?.offset ?? 0,
      soff: conv?.state.offset ?? 0,
      sld: conv?.state.ld ?? 0,
      nwoff: norm?.weight.offset ?? 0,
      eps: norm?.eps ?? 0,
      wsoff: q4Scales(w),
      alpha: f.alpha ?? 1,
      c0: f.convFrom ?? 0,
      zoff: z?.offset ?? 0,
      zld: z?.ld ?? 0,
    },
    Math.ceil(p / R),
    Math.ceil(m / 4),
  );
}
