import { fail } from '../../../errors.js';
import { Tensor } from '../../../tensor/tensor.js';
import type { Mamba3Dims, Mamba3ScanArgs } from '../../contract/mamba3.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { checkIndex, grid, rowsGrid } from './launch.js';
import { checkMamba3Limits, packMamba3Params } from './mamba3-scan.js';
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
const DEFAULT_CHUNK = 64;

const entry = <K extends 'm3_angles' | 'm3_fold' | 'm3_prep' | 'm3_post'>(e: K) =>
  kernel(W.mamba3Chunked, e, { name: `mamba3Chunked.${e.slice(3)}` });
const ANGLES = entry('m3_angles');
const FOLD = entry('m3_fold');
const PREP = entry('m3_prep');
const POST = entry('m3_post');

/** What the chunked form needs beyond the launchers' host: temporary tensors for the SSD scan's inputs. */
export interface TensorHost extends KernelHost {
  alloc(shape: readonly number[]): Tensor;
  fill(t: Tensor, value: number): void;
}

/**
 * Whether Mamba-3's forward takes the chunked form: SISO only (MIMO scans token by token), and by
 * `ssdPath` as Mamba-2's SSD scan: 'sequential' never, 'chunked' always, 'auto' past MAMBA3_SCAN_MAX tokens.
 */
export function mamba3TakesChunked(bk: KernelHost, d: Mamba3Dims, l: number): boolean {
  if (d.R !== 1) return false;
  const path = bk.options.ssdPath;
  return path === 'chunked' || (path === 'auto' && l > MAMBA3_SCAN_MAX);
}

/**
 * Mamba-3's forward in the chunked form (mamba3-chunked.wgsl says how): m3_angles, m3_fold (with a
 * state), m3_prep, Mamba-2's chunked SSD scan on (dt', A' = −1, x, B', q) with g = h groups, m3_post.
 * Same contract as the token scan (mamba3-scan.ts), state included; SISO only.
 */
export function mamba3Chunked(bk: TensorHost, a: Mamba3ScanArgs, b: number, l: number): void {
  const { h, p, n, g, R, S } = a.dims;
  if (R !== 1) fail('UNSUPPORTED', `mamba3Scan's chunked form on WebGPU is SISO only, got rank ${R}`);
  checkMamba3Limits('mamba3Scan', a.dims);
  if (b * l === 0) return;
  const st = a.state;
  if (st)
    for (const [k, t] of Object.entries(st) as [string, Tensor][])
      if (t.ld !== t.cols)
        fail('UNSUPPORTED', `mamba3Scan on WebGPU: the state tensor ${k} must be contiguous (a fresh tensor)`);
  const e = h * p,
    rows = b * l;
  const sdc = rows * h * S;
  checkIndex('mamba3Scan (scratch)', sdc + rows * h);
  checkIndex("mamba3Scan (B')", rows * h * n);
  const Q = Math.max(1, Math.min(bk.options.ssdChunk || DEFAULT_CHUNK, l));
  const { prm, offs } = packMamba3Params(bk, a);
  const sc = bk.scratch((sdc + rows * h) * 4); // TH (b, l, h, S), DC (b, l, h)
  const dtp = bk.alloc([b, l, h]),
    kb = bk.alloc([b, l, h * n]),
    qc = bk.alloc([b, l, h * n]),
    y1 = bk.alloc([b, l, e]),
    A = bk.alloc([h]);
  bk.fill(A, -1);
  const u = {
    l,
    h,
    pd: p,
    n,
    g,
    S,
    rows,
    flags: (st ? 1 : 0) | (a.dims.rotateHalves ? 2 : 0) | (a.normWeight ? 4 : 0),
    poff: a.proj.offset,
    pld: a.proj.ld,
    yoff: a.y.offset,
    yld: a.y.ld,
    odt: offs.odt,
    obn: offs.obn,
    ocn: offs.ocn,
    obb: offs.obb,
    ocb: offs.ocb,
    od: offs.od,
    onw: offs.onw,
    oth: st ? st.theta.offset : 0,
    oss: st ? st.ssm.offset : 0,
    oks: st ? st.k.offset : 0,
    oxs: st ? st.x.offset : 0,
    sdc,
    afloor: a.dims.aFloor,
    eps: a.dims.eps,
  };
  const proj = bk.buf(a.proj);
  bk.d.run(
    bk.d.pipe(ANGLES.entry, ANGLES),
    { proj, prm, sc, th: st ? bk.buf(st.theta) : bk.dummyW },
    u,
    ...grid(b * h, 1),
  );
  if (st) {
    const [fx, fy] = grid(b * h * p * n, 64);
    const fold = { proj, prm, ssm: bk.buf(st.ssm), ks: bk.buf(st.k), xs: bk.buf(st.x) };
    bk.d.run(bk.d.pipe(FOLD.entry, FOLD), fold, u, fx, fy);
  }
  const [ry, rz] = rowsGrid(rows);
  const prep = {
    proj,
    prm,
    sc,
    ks: st ? bk.buf(st.k) : bk.dummyW,
    xs: st ? bk.buf(st.x) : bk.dummyW2,
    dtp: bk.buf(dtp),
    kb: bk.buf(kb),
    qc: bk.buf(qc),
  };
  bk.d.run(bk.d.pipe(PREP.entry, PREP), prep, u, h, ry, rz);
  // x: a view of proj's x columns (no autograd record: this is the kernel, below the ops)
  const x = new Tensor(a.proj.backend, a.proj.storage, [b, l, e], a.proj.dtype, a.proj.offset + e, a.proj.ld);
  chunked(
    bk,
    {
      y: y1,
      x,
      dt: dtp,
      A,
      B: kb,
      C: qc,
      D: null,
      dtBias: null,
      dtSoftplus: false,
      dtLimit: [-Infinity, Infinity],
      nGroups: h,
      chunkSize: Q,
      h0: st ? st.ssm : null,
      hOut: st ? st.ssm : null,
    },
    { b, l, h, p, g: h, n },
    Q,
  );
  bk.d.run(bk.d.pipe(POST.entry, POST), { proj, prm, sc, y1: bk.buf(y1), yout: bk.buf(a.y) }, u, h, ry, rz);
  for (const t of [dtp, kb, qc, y1, A]) t.dispose();
  bk.release(sc);
  bk.release(prm);
}
