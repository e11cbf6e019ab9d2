import { fail } from '../../../errors.js';
import { Tensor } from '../../../tensor/tensor.js';
import type { Mamba3Dims, Mamba3ScanArgs, Mamba3State } from '../../contract/mamba3.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { checkIndex, grid, rowsGrid } from './launch.js';
import { type Mamba3ParamOffsets, checkMamba3Limits, mamba3Uniforms, packMamba3Params } from './mamba3-scan.js';
import { chunked } from './ssd-scan.js';
import * as W from './wgsl.gen.js';

/** Longest prompt `auto` (bk.options.ssdPath) scans token by token: the chunked form costs ~9 dispatches. */
export const MAMBA3_SCAN_MAX = 32;
/**
 * Chunk length by default (`ssdChunk` 0). Each head is its own group here (B' and q are per head), so the
 * intra-chunk products, l Q (n + p) per head, are not shared over heads as Mamba-2's C Bᵀ is; at Q = 64
 * they cost about what the chunk states do (2 l p n at p = n = 64), and the Q² scratch per chunk and
 * head is 16 KiB instead of 256 KiB.
 */
export const DEFAULT_CHUNK = 64;

const entry = <K extends 'm3_angles' | 'm3_fold' | 'm3_prep' | 'm3_post' | 'm3_prep_mimo' | 'm3_post_mimo'>(e: K) =>
  kernel(W.mamba3Chunked, e, { name: `mamba3Chunked.${e.slice(3)}` });
export const ANGLES = entry('m3_angles');
const FOLD = entry('m3_fold');
export const PREP = entry('m3_prep');
const POST = entry('m3_post');
export const PREP_MIMO = entry('m3_prep_mimo');
const POST_MIMO = entry('m3_post_mimo');

/** What the chunked form needs beyond the launchers' host: temporary tensors for the SSD scan's inputs. */
export interface TensorHost extends KernelHost {
  alloc(shape: readonly number[]): Tensor;
  fill(t: Tensor, value: number): void;
}

/** MIMO's A' = −EPS_A (mamba3-chunked.wgsl, the same constant): exp(−EPS_A) rounds to 1 in f32. */
export const EPS_A = 2 ** -30;

/** `auto` scans token by token where a buffer of the chunked form would exceed this (long MIMO prompts). */
const AUTO_MAX_BYTES = 2 ** 30;

/**
 * Whether Mamba-3's forward takes the chunked form, by `ssdPath` as Mamba-2's SSD scan: 'sequential'
 * never, 'chunked' always, 'auto' past MAMBA3_SCAN_MAX tokens while its largest buffers (the SSD's
 * inputs, its scratch, its output) stay within AUTO_MAX_BYTES.
 */
export function mamba3TakesChunked(bk: KernelHost, d: Mamba3Dims, b: number, l: number): boolean {
  const path = bk.options.ssdPath;
  if (path !== 'auto') return path === 'chunked';
  if (l <= MAMBA3_SCAN_MAX) return false;
  const { h, p, n, R } = d;
  const L = R > 1 ? l * (2 * R + 1) : l;
  const Q = Math.min(bk.options.ssdChunk || DEFAULT_CHUNK, L),
    nc = Math.ceil(L / Q);
  const inputs = b * L * (h + (R > 1 ? h * p : 0) + 2 * h * n);
  const scratch = 2 * b * h * L + b * h * nc * (Q * Q + p * n);
  return 4 * Math.max(inputs, scratch, b * L * h * p) <= AUTO_MAX_BYTES;
}

/**
 * The SSD scan's inputs of the chunked form for b sequences of l tokens, U SSD steps a token (MIMO: 2R + 1), in
 * one tensor `wk`: dt' (b, L, h) at wdt, X (b, L, e) at wx (MIMO; SISO's x is a view of proj's x columns), B'
 * and C (b, L, h n) at wb and wc (L = l U); `ssd` the scan's arguments on them but its y, h0 and hOut; its A
 * (h) filled (−EPS_A for MIMO, else −1); y1 (b, L, e) for its output. Dispose wk, y1 and A after.
 */
export function chunkedSsdInputs(
  bk: TensorHost,
  a: Pick<Mamba3ScanArgs, 'dims' | 'proj'>,
  b: number,
  l: number,
  U: number,
) {
  const { h, p, n } = a.dims;
  const mimo = U > 1;
  const e = h * p,
    L = l * U;
  const wdt = 0,
    wx = b * L * h,
    wb = wx + (mimo ? b * L * e : 0),
    wc = wb + b * L * h * n;
  const wk = bk.alloc([wc + b * L * h * n]);
  const view = (off: number, cols: number): Tensor => new Tensor(wk.backend, wk.storage, [b, L, cols], 'f32', off);
  const y1 = bk.alloc([b, L, e]),
    A = bk.alloc([h]);
  bk.fill(A, mimo ? -EPS_A : -1);
  // SISO's x: a view of proj's x columns (no autograd record: this is the kernel, below the ops)
  const x = mimo
    ? view(wx, e)
    : new Tensor(a.proj.backend, a.proj.storage, [b, l, e], a.proj.dtype, a.proj.offset + e, a.proj.ld);
  const Q = Math.max(1, Math.min(bk.options.ssdChunk || DEFAULT_CHUNK, L));
  const ssd = {
    x,
    dt: view(wdt, h),
    A,
    B: view(wb, h * n),
    C: view(wc, h * n),
    D: null,
    dtBias: null,
    dtSoftplus: false,
    dtLimit: [-Infinity, Infinity] as const,
    nGroups: h,
    chunkSize: Q,
  };
  return { wk, wdt, wx, wb, wc, y1, A, ssd, Q };
}

/**
 * The m3_* kernels' uniforms (struct P of mamba3-chunked.wgsl): sc's DC at sdc, wk's regions (chunkedSsdInputs),
 * the flags; the output `y` and the state `st` where there are (the backward's recomputation has neither).
 */
export function chunkedUniforms(
  a: Pick<Mamba3ScanArgs, 'dims' | 'proj'>,
  offs: Mamba3ParamOffsets,
  l: number,
  rows: number,
  sdc: number,
  w: { wdt: number; wx: number; wb: number; wc: number },
  flags: number,
  y: Tensor | null,
  st: Mamba3State | null,
) {
  const { wdt, wx, wb, wc } = w;
  return {
    ...mamba3Uniforms(a, offs, l),
    rows,
    flags,
    yoff: y ? y.offset : 0,
    yld: y ? y.ld : 0,
    oth: st ? st.theta.offset : 0,
    oss: st ? st.ssm.offset : 0,
    oks: st ? st.k.offset : 0,
    oxs: st ? st.x.offset : 0,
    sdc,
    wdt,
    wx,
    wb,
    wc,
  };
}

/**
 * Mamba-3's forward in the chunked form (mamba3-chunked.wgsl says how): m3_angles, m3_fold (with a
 * state), m3_prep, Mamba-2's chunked SSD scan with each head its own group, m3_post. SISO feeds the SSD
 * (dt', A' = −1, x, B', q); MIMO (rank R) feeds it 2R + 1 sub-tokens per token (m3_prep_mimo, m3_post_mimo).
 * Same contract as the token scan (mamba3-scan.ts), state included.
 */
export function mamba3Chunked(bk: TensorHost, a: Mamba3ScanArgs, b: number, l: number): void {
  const { h, p, n, R, S } = a.dims;
  checkMamba3Limits('mamba3Scan', a.dims);
  if (b * l === 0) return;
  const st = a.state;
  if (st)
    for (const [k, t] of Object.entries(st) as [string, Tensor][])
      if (t.ld !== t.cols)
        fail('UNSUPPORTED', `mamba3Scan on WebGPU: the state tensor ${k} must be contiguous (a fresh tensor)`);
  const mimo = a.mimoX !== null;
  const U = mimo ? 2 * R + 1 : 1; // SSD steps per token
  const rows = b * l,
    L = l * U;
  const sdc = rows * h * S;
  const dcw = mimo ? 1 + R * R : 1; // DC floats per (token, head)
  checkIndex('mamba3Scan (scratch)', sdc + rows * h * dcw);
  checkIndex("mamba3Scan (B')", b * L * h * (2 * n + p + 1));
  const { prm, offs } = packMamba3Params(bk, a);
  const sc = bk.scratch((sdc + rows * h * dcw) * 4); // TH (b, l, h, S), DC (b, l, h, dcw)
  const inp = chunkedSsdInputs(bk, a, b, l, U);
  const { wk, y1, A, Q } = inp;
  const flags = (st ? 1 : 0) | (a.dims.rotateHalves ? 2 : 0) | (a.normWeight ? 4 : 0) | (mimo ? 8 : 0);
  const u = chunkedUniforms(a, offs, l, rows, sdc, inp, flags, a.y, st);
  const proj = bk.buf(a.proj);
  const th = st ? bk.buf(st.theta) : bk.dummyW;
  bk.d.run(bk.d.pipe(ANGLES.entry, ANGLES), { proj, prm, sc, th }, u, ...grid(b * h, 1));
  if (st) {
    const [fx, fy] = grid(b * h * p * n, 64);
    const fold = { proj, prm, ssm: bk.buf(st.ssm), ks: bk.buf(st.k), xs: bk.buf(st.x) };
    bk.d.run(bk.d.pipe(FOLD.entry, FOLD), fold, u, fx, fy);
  }
  const [ry, rz] = rowsGrid(rows);
  const ks = st ? bk.buf(st.k) : bk.dummyW,
    xs = st ? bk.buf(st.x) : bk.dummyW2;
  if (mimo) bk.d.run(bk.d.pipe(PREP_MIMO.entry, PREP_MIMO), { proj, prm, sc, ks, xs, wk: bk.buf(wk) }, u, h, ry, rz);
  else bk.d.run(bk.d.pipe(PREP.entry, PREP), { proj, prm, sc, ks, xs, wk: bk.buf(wk) }, u, h, ry, rz);
  const ssd = { ...inp.ssd, y: y1, h0: st ? st.ssm : null, hOut: st ? st.ssm : null };
  chunked(bk, ssd, { b, l: L, h, p, g: h, n }, Q);
  const post = { proj, prm, sc, y1: bk.buf(y1), yout: bk.buf(a.y) };
  if (mimo) bk.d.run(bk.d.pipe(POST_MIMO.entry, POST_MIMO), post, u, h, ry, rz);
  else bk.d.run(bk.d.pipe(POST.entry, POST), post, u, h, ry, rz);
  for (const t of [wk, y1, A]) t.dispose();
  bk.release(sc);
  bk.release(prm);
}
