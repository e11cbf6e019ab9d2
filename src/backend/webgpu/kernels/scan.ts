import type { SelectiveScanArgs } from '../../contract/inference.js';
import { kernel } from '../bindings.js';
import type { GpuStorage } from '../gpu-buffers.js';
import type { KernelHost } from '../kernel-host.js';
import { copyInto } from './copy.js';
import { grid, initialState, withConsts } from './launch.js';
import * as W from './wgsl.gen.js';

/** Channels per workgroup of scan_chunk / scan_out (default). */
const SCAN_WG = 64;
/** Threads the chunked scan aims for (enough to fill a large GPU several times over). */
const TARGET_THREADS = 1 << 17;

/**
 * Chunk length: a power of two from 16 up, so that b * e * chunks reaches `target` threads (or the
 * forced length, rounded up to a multiple of 4: the kernels walk time in blocks of 4).
 */
export function chunkLength(b: number, l: number, e: number, forced: number, target = TARGET_THREADS): number {
  if (forced > 0) return Math.ceil(forced / 4) * 4;
  const chunks = Math.max(1, Math.ceil(target / (b * e)));
  let L = 16;
  while (L * chunks < l && L < 1 << 20) L *= 2;
  return L;
}

/**
 * The fused selective scan (scan.wgsl): scan_pack, then scan_out alone when the sequence is one
 * chunk (the l = 1 step), else scan_chunk -> scan_carry -> scan_out over K chunks. h0 = hOut (the
 * recurrent step) is read in place when there is one chunk, and copied into the carry slots otherwise.
 */
export function selectiveScan(
  bk: KernelHost,
  s: SelectiveScanArgs,
  { b, l, e, n }: { b: number; l: number; e: number; n: number },
): void {
  if (b * e === 0) return;
  const n4 = Math.ceil(n / 4);
  const L = chunkLength(b, l, e, bk.options.scanChunk, bk.options.scanThreads || TARGET_THREADS);
  const K = Math.max(1, Math.ceil(l / L));
  const code = withConsts('scan', W.scan.code, { N4: n4 }); // private arrays need a constant size
  const WG = bk.options.scanWorkgroup || SCAN_WG;
  const flags = {
    HAS_Z: s.z ? 1 : 0,
    HAS_D: s.D ? 1 : 0,
    HAS_BIAS: s.deltaBias ? 1 : 0,
    SOFTPLUS: s.deltaSoftplus ? 1 : 0,
  };
  const fkey = `${n4}:${WG}:${!!s.z}:${!!s.D}:${!!s.deltaBias}:${s.deltaSoftplus}`;
  // B and C must sit in one buffer (they do in Mamba: views of x_proj's output); else pack them.
  let bc = bk.buf(s.B);
  let boff = s.B.offset,
    bld = s.B.ld,
    coff = s.C.offset,
    cld = s.C.ld;
  let packed: GpuStorage | null = null;
  if (s.C.storage !== s.B.storage) {
    packed = bk.scratch(b * l * 2 * n * 4);
    copyInto(bk, s.B, packed, 0, 2 * n, 'f32');
    copyInto(bk, s.C, packed, n, 2 * n, 'f32');
    bc = packed;
    boff = 0;
    bld = 2 * n;
    coff = n;
    cld = 2 * n;
  }
  const slotsFloats = b * K * e * 4 * n4;
  const chan = bk.scratch(e * (n4 + 1) * 16);
  const scratch = K > 1 ? bk.scratch((slotsFloats + b * K * e) * 4) : null;
  const params = {
    b,
    l,
    e,
    n,
    K,
    L,
    uoff: s.u.offset,
    uld: s.u.ld,
    doff: s.delta.offset,
    dld: s.delta.ld,
    zoff: s.z?.offset ?? 0,
    zld: s.z?.ld ?? 0,
    yoff: s.y.offset,
    yld: s.y.ld,
    boff,
    bld,
    coff,
    cld,
    hoff: s.h0?.offset ?? 0,
    hld: s.h0?.ld ?? 0,
    ooff: s.hOut?.offset ?? 0,
    old: s.hOut?.ld ?? 0,
    aoff: s.A.offset,
    ald: s.A.ld,
    Doff: s.D?.offset ?? 0,
    biasoff: s.deltaBias?.offset ?? 0,
    sd: slotsFloats,
  };
  const U = bk.buf(s.u),
    DL = bk.buf(s.delta),
    Z = s.z ? bk.buf(s.z) : bk.dummyR;
  // 1. pack per-channel constants
  const pack = bk.d.pipe(`scan_pack:${fkey}`, kernel(W.scan, 'scan_pack', { name: 'scan.pack', code }), flags);
  const Dv = s.D ? bk.buf(s.D) : bk.dummyR,
    Bv = s.deltaBias ? bk.buf(s.deltaBias) : bk.dummyR;
  bk.d.run(pack, { chanw: chan, Ain: bk.buf(s.A), Dv, Bv }, params, Math.ceil(e / 64));
  // h0 = hOut read in place (same window); other overlaps go through the dispatcher's alias copy
  let { hin: hinMode, h0: hin } = initialState(bk, s.h0, s.hOut);
  if (K > 1) {
    // 2. chunk-local states, 3. carries
    const chunk = bk.d.pipe(`scan_chunk:${fkey}`, kernel(W.scan, 'scan_chunk', { name: 'scan.chunk', code }), {
      ...flags,
      WG,
    });
    bk.d.run(chunk, { U, DL, BC: bc, chan, scratch: scratch! }, params, Math.ceil(e / WG), K - 1, b);
    const carry = bk.d.pipe(
      `scan_carry:${fkey}:${!!s.h0}`,
      kernel(W.scan, 'scan_carry', { name: 'scan.carry', code }),
      { ...flags, HAS_H0: s.h0 ? 1 : 0 },
    );
    const [gx, gy] = grid(b * e * n4, 64);
    bk.d.run(carry, { chan, hin: s.h0 ? bk.buf(s.h0) : bk.dummyR, scratch: scratch! }, params, gx, gy);
    hinMode = 2; // the carries
    hin = scratch!;
  }
  // 4. outputs
  const out = bk.d.pipe(
    `scan_out:${fkey}:${hinMode}:${!!s.hOut}`,
    kernel(W.scan, 'scan_out', { name: 'scan.out', code }),
    { ...flags, WG, HIN: hinMode, HAS_HOUT: s.hOut ? 1 : 0 },
  );
  const hout = s.hOut ? bk.buf(s.hOut) : bk.dummyW;
  bk.d.run(out, { U, DL, Z, BC: bc, chan, hin, Y: bk.buf(s.y), hout }, params, Math.ceil(e / WG), K, b);
  bk.release(chan);
  if (scratch) bk.release(scratch);
  if (packed) bk.release(packed);
}
