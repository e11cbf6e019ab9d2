import type { SsdScanArgs, SsdDims } from '../../contract/inference.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { checkIndex, grid, initialState, withConsts } from './launch.js';
import * as W from './wgsl.gen.js';

/** Longest sequence `auto` scans step by step (the chunked form costs 4-5 dispatches and scratch). */
const SEQUENTIAL_MAX = 16;
/** The chunked form's chunk length by default (mamba_ssm's): the slots then hold n / 256 of x's size. */
const DEFAULT_CHUNK = 256;
/** Most threads of ssd_seq's workgroup (SEQ_WG in the shader). */
const SEQ_WG = 256;
/** Output tile edge of the matrix products (T in the shader). */
const TILE = 64;
const F32_MAX = 3.4028234663852886e38;

/**
 * ssd_seq's shape: lanes per state row (ks, a power of two <= 32) as many as keep a workgroup's rows
 * covering head_dim p, no more than n, and enough that a lane holds at most 64 states; the workgroup
 * (wg threads, 32 to 256) as small as covers p rows (small heads: fewer idle threads at the barriers).
 */
export function seqShape(p: number, n: number): { ks: number; wg: number } {
  let ks = 1;
  while (ks < 32 && 2 * ks * p <= SEQ_WG && ks < n) ks *= 2;
  while (Math.ceil(n / ks) > 64 && ks < 32) ks *= 2;
  let rows = 1;
  while (rows < p && rows * ks < SEQ_WG) rows *= 2;
  return { ks, wg: Math.max(32, rows * ks) };
}

/** Mamba-2's SSD scan on the GPU (ssd-scan.wgsl); the path from `bk.options.ssdPath` and the length. */
export function ssdScan(bk: KernelHost, s: SsdScanArgs, dims: SsdDims): void {
  const { b, l, h, p } = dims;
  if (b * l * h * p === 0) return; // as the CPU reference: an empty sequence leaves hOut as it is
  for (const t of [s.x, s.y, s.dt, s.B, s.C, s.h0, s.hOut])
    if (t && t.size > 0) checkIndex('ssdScan', t.offset + (t.rows - 1) * t.ld + t.cols);
  const path = bk.options.ssdPath;
  if (path === 'sequential' || (path === 'auto' && l <= SEQUENTIAL_MAX)) sequential(bk, s, dims);
  else chunked(bk, s, dims, Math.max(1, Math.min(bk.options.ssdChunk || DEFAULT_CHUNK, l)));
}

/** Flag bits of the shader's `flags` parameter. */
const HAS_D = 1,
  HAS_BIAS = 2,
  SOFTPLUS = 4,
  HAS_HOUT = 8,
  HAS_CARRY = 16;

/** What depends on the path in the parameter block (struct P of the shader). */
interface Launch {
  Q: number;
  nc: number;
  sG: number;
  sS: number;
  flags: number;
  hin: number;
  ks: number;
}

/** The parameter block every entry point reads. */
function params(s: SsdScanArgs, d: SsdDims, o: Launch) {
  const [lo, hi] = s.dtLimit;
  return {
    b: d.b,
    l: d.l,
    h: d.h,
    p: d.p,
    g: d.g,
    n: d.n,
    ...o,
    xoff: s.x.offset,
    xld: s.x.ld,
    dtoff: s.dt.offset,
    dtld: s.dt.ld,
    boff: s.B.offset,
    bld: s.B.ld,
    coff: s.C.offset,
    cld: s.C.ld,
    yoff: s.y.offset,
    yld: s.y.ld,
    hoff: s.h0?.offset ?? 0,
    hld: s.h0?.ld ?? 0,
    ooff: s.hOut?.offset ?? 0,
    old: s.hOut?.ld ?? 0,
    aoff: s.A.offset,
    Doff: s.D?.offset ?? 0,
    biasoff: s.dtBias?.offset ?? 0,
    dtlo: Math.max(lo, -F32_MAX),
    dthi: Math.min(hi, F32_MAX),
  };
}

function flagsOf(s: SsdScanArgs): number {
  return (s.D ? HAS_D : 0) | (s.dtBias ? HAS_BIAS : 0) | (s.dtSoftplus ? SOFTPLUS : 0) | (s.hOut ? HAS_HOUT : 0);
}

/** One dispatch: a workgroup per (rows of a head's state, head, batch row) walks the steps. */
function sequential(bk: KernelHost, s: SsdScanArgs, d: SsdDims): void {
  const { ks, wg } = seqShape(d.p, d.n);
  // states per lane, rounded up to a power of two: fewer shader variants to compile (the extra are skipped)
  let kp = 1;
  while (kp * ks < d.n) kp *= 2;
  const { hin, h0 } = initialState(bk, s.h0, s.hOut);
  const code = withConsts('ssd_seq', W.ssdScan.code, { KP: kp });
  const pipe = bk.d.pipe(`ssd_seq:${kp}:${wg}`, kernel(W.ssdScan, 'ssd_seq', { name: 'ssd.seq', code }), {
    SEQ_WG: wg,
  });
  bk.d.run(
    pipe,
    {
      X: bk.buf(s.x),
      DT: bk.buf(s.dt),
      Bm: bk.buf(s.B),
      Cm: bk.buf(s.C),
      Av: bk.buf(s.A),
      Dv: s.D ? bk.buf(s.D) : bk.dummyR,
      biasv: s.dtBias ? bk.buf(s.dtBias) : bk.dummyR,
      H0: h0,
      Y: bk.buf(s.y),
      hout: s.hOut ? bk.buf(s.hOut) : bk.dummyW,
    },
    params(s, d, { Q: 0, nc: 0, sG: 0, sS: 0, flags: flagsOf(s), hin, ks }),
    Math.ceil(d.p / (wg / ks)),
    d.h,
    d.b,
  );
}

const chunkKernel = <K extends 'ssd_dt' | 'ssd_cb' | 'ssd_state' | 'ssd_pass' | 'ssd_out'>(entry: K) =>
  kernel(W.ssdScan, entry, { name: entry.replace('_', '.') });
const DT = chunkKernel('ssd_dt');
const CB = chunkKernel('ssd_cb');
const STATE = chunkKernel('ssd_state');
const PASS = chunkKernel('ssd_pass');
const OUT = chunkKernel('ssd_out');

/**
 * The chunked form in chunks of Q: ssd_dt, ssd_cb, ssd_state (chunks whose own state is needed: all
 * but the last, the last too for hOut), ssd_pass (when a chunk starts from a nonzero state or for
 * hOut), ssd_out. Scratch: dt and cum (2 b h l), G (b g nc Q^2), slots (b h nc p n) floats.
 */
export function chunked(bk: KernelHost, s: SsdScanArgs, d: SsdDims, Q: number): void {
  const { b, l, h, p, g, n } = d;
  const nc = Math.ceil(l / Q);
  const { hin, h0 } = initialState(bk, s.h0, s.hOut);
  const hasOut = !!s.hOut;
  const carry = nc > 1 || hin !== 0;
  const sG = 2 * b * h * l;
  const sS = sG + b * g * nc * Q * Q;
  const total = sS + (carry || hasOut ? b * h * nc * p * n : 0);
  checkIndex('ssdScan (scratch)', total);
  const scratch = bk.scratch(total * 4);
  const o: Launch = { Q, nc, sG, sS, flags: flagsOf(s) | (carry ? HAS_CARRY : 0), hin, ks: 0 };
  const X = bk.buf(s.x),
    B = bk.buf(s.B),
    C = bk.buf(s.C);
  const u = params(s, d, o);
  const biasv = s.dtBias ? bk.buf(s.dtBias) : bk.dummyR,
    Dv = s.D ? bk.buf(s.D) : bk.dummyR;
  const [gx, gy] = grid(b * h * nc, 64);
  bk.d.run(bk.d.pipe(DT.entry, DT), { DT: bk.buf(s.dt), Av: bk.buf(s.A), biasv, S: scratch }, u, gx, gy);
  const tq = Math.ceil(Q / TILE),
    tp = Math.ceil(p / TILE);
  bk.d.run(bk.d.pipe(CB.entry, CB), { Bm: B, Cm: C, S: scratch }, u, tq * tq, nc, b * g);
  const ownChunks = hasOut ? nc : nc - 1;
  if (ownChunks > 0) {
    bk.d.run(bk.d.pipe(STATE.entry, STATE), { X, Bm: B, S: scratch }, u, tp * Math.ceil(n / TILE), ownChunks, b * h);
  }
  if (carry || hasOut) {
    const [px, py] = grid(b * h * p * n, 64);
    bk.d.run(bk.d.pipe(PASS.entry, PASS), { H0: h0, hout: s.hOut ? bk.buf(s.hOut) : bk.dummyW, S: scratch }, u, px, py);
  }
  bk.d.run(bk.d.pipe(OUT.entry, OUT), { X, Cm: C, Dv, Y: bk.buf(s.y), S: scratch }, u, tq * tp, nc, b * h);
  bk.release(scratch);
}
