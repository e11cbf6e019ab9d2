import type { SsdScanArgs, SsdDims } from '../../contract/inference.js';
import type { GpuStorage } from '../gpu-buffers.js';
import type { WebGpuBackend } from '../webgpu-backend.js';
import { checkIndex, grid, initialState, withConsts } from './launch.js';
import * as W from './wgsl.gen.js';

/** How `ssdScan` computes: step by step (`ssd_seq`), in chunks (the SSD matrix products), or chosen from the length. */
export type SsdPath = 'auto' | 'sequential' | 'chunked';

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
export function ssdScan(bk: WebGpuBackend, s: SsdScanArgs, dims: SsdDims): void {
  const { b, l, h, p } = dims;
  if (b * l * h * p === 0) return; // as the CPU reference: an empty sequence leaves hOut as it is
  for (const t of [s.x, s.y, s.dt, s.B, s.C, s.h0, s.hOut]) if (t && t.size > 0) checkIndex('ssdScan', t.offset + (t.rows - 1) * t.ld + t.cols);
  const path = bk.options.ssdPath;
  if (path === 'sequential' || (path === 'auto' && l <= SEQUENTIAL_MAX)) sequential(bk, s, dims);
  else chunked(bk, s, dims, Math.max(1, Math.min(bk.options.ssdChunk || DEFAULT_CHUNK, l)));
}

/** Flag bits of the shader's `flags` parameter. */
const HAS_D = 1, HAS_BIAS = 2, SOFTPLUS = 4, HAS_HOUT = 8, HAS_CARRY = 16;

/** What every entry point reads from its parameter block (struct P of the shader). */
interface Launch { Q: number; nc: number; sG: number; sS: number; flags: number; hin: number; ks: number }

function params(bk: WebGpuBackend, s: SsdScanArgs, d: SsdDims, o: Launch): void {
  const [lo, hi] = s.dtLimit;
  bk.d.params().u(d.b).u(d.l).u(d.h).u(d.p).u(d.g).u(d.n).u(o.Q).u(o.nc)
    .u(s.x.offset).u(s.x.ld).u(s.dt.offset).u(s.dt.ld).u(s.B.offset).u(s.B.ld).u(s.C.offset).u(s.C.ld)
    .u(s.y.offset).u(s.y.ld).u(s.h0?.offset ?? 0).u(s.h0?.ld ?? 0).u(s.hOut?.offset ?? 0).u(s.hOut?.ld ?? 0)
    .u(s.A.offset).u(s.D?.offset ?? 0).u(s.dtBias?.offset ?? 0)
    .f(Math.max(lo, -F32_MAX)).f(Math.min(hi, F32_MAX)).u(o.sG).u(o.sS).u(o.flags).u(o.hin).u(o.ks);
}

function flagsOf(s: SsdScanArgs): number {
  return (s.D ? HAS_D : 0) | (s.dtBias ? HAS_BIAS : 0) | (s.dtSoftplus ? SOFTPLUS : 0) | (s.hOut ? HAS_HOUT : 0);
}

/** One dispatch: a workgroup per (rows of a head's state, head, batch row) walks the steps. */
function sequential(bk: WebGpuBackend, s: SsdScanArgs, d: SsdDims): void {
  const { ks, wg } = seqShape(d.p, d.n);
  // states per lane, rounded up to a power of two: fewer shader variants to compile (the extra are skipped)
  let kp = 1;
  while (kp * ks < d.n) kp *= 2;
  const { hin, h0 } = initialState(bk, s.h0, s.hOut);
  const pipe = bk.d.pipe(`ssd_seq:${kp}:${wg}`, { name: 'ssd.seq', code: withConsts('ssd_seq', W.ssdScan, { KP: kp }), entry: 'ssd_seq', access: 'rrrrrrrrww-' }, { SEQ_WG: wg });
  params(bk, s, d, { Q: 0, nc: 0, sG: 0, sS: 0, flags: flagsOf(s), hin, ks });
  bk.d.run(pipe, [bk.buf(s.x), bk.buf(s.dt), bk.buf(s.B), bk.buf(s.C), bk.buf(s.A), s.D ? bk.buf(s.D) : bk.dummyR,
    s.dtBias ? bk.buf(s.dtBias) : bk.dummyR, h0, bk.buf(s.y), s.hOut ? bk.buf(s.hOut) : bk.dummyW, null],
  Math.ceil(d.p / (wg / ks)), d.h, d.b);
}

const src = (entry: string, access: string): { name: string; code: string; entry: string; access: string } =>
  ({ name: entry.replace('_', '.'), code: W.ssdScan, entry, access });
const DT = src('ssd_dt', '-r--r-r---w');
const CB = src('ssd_cb', '--rr------w');
const STATE = src('ssd_state', 'r-r-------w');
const PASS = src('ssd_pass', '-------r-ww');
const OUT = src('ssd_out', 'r--r-r--w-w');

/**
 * The chunked form in chunks of Q: ssd_dt, ssd_cb, ssd_state (chunks whose own state is needed: all
 * but the last, the last too for hOut), ssd_pass (when a chunk starts from a nonzero state or for
 * hOut), ssd_out. Scratch: dt and cum (2 b h l), G (b g nc Q^2), slots (b h nc p n) floats.
 */
function chunked(bk: WebGpuBackend, s: SsdScanArgs, d: SsdDims, Q: number): void {
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
  const X = bk.buf(s.x), B = bk.buf(s.B), C = bk.buf(s.C);
  const run = (k: typeof DT, bufs: (GpuStorage | null)[], x: number, y = 1, z = 1): void => {
    params(bk, s, d, o);
    bk.d.run(bk.d.pipe(k.entry, k), bufs, x, y, z);
  };
  const [gx, gy] = grid(b * h * nc, 64);
  run(DT, [null, bk.buf(s.dt), null, null, bk.buf(s.A), null, s.dtBias ? bk.buf(s.dtBias) : bk.dummyR, null, null, null, scratch], gx, gy);
  const tq = Math.ceil(Q / TILE);
  run(CB, [null, null, B, C, null, null, null, null, null, null, scratch], tq * tq, nc, b * g);
  const ownChunks = hasOut ? nc : nc - 1;
  if (ownChunks > 0) run(STATE, [X, null, B, null, null, null, null, null, null, null, scratch], Math.ceil(p / TILE) * Math.ceil(n / TILE), ownChunks, b * h);
  if (carry || hasOut) {
    const [px, py] = grid(b * h * p * n, 64);
    run(PASS, [null, null, null, null, null, null, null, h0, null, s.hOut ? bk.buf(s.hOut) : bk.dummyW, scratch], px, py);
  }
  run(OUT, [X, null, null, C, null, s.D ? bk.buf(s.D) : bk.dummyR, null, null, bk.buf(s.y), null, scratch], tq * Math.ceil(p / TILE), nc, b * h);
  bk.release(scratch);
}
