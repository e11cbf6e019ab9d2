import type { SelectiveScanBackwardArgs } from '../../contract/training.js';
import { fail } from '../../../errors.js';
import { kernel, type EntryTable, type Kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { checkIndex, grid, withConsts } from './launch.js';
import * as W from './wgsl.gen.js';

/** Largest state size (S = n / 16 states per lane, each with T steps of history in registers). */
const MAX_N = 256;
/** Chunk length unless the call asks for another. */
const DEFAULT_CHUNK = 16;
/** Longest chunk: a lane keeps the chunk's states and decays (2 T S floats, at most 64) in registers. */
const MAX_CHUNK = 32;
/** Threads per workgroup of bs_chunk and bs_main (the WGSL's WG). */
const WG = 64;
/** Channels whose dB, dC partial sums one bs_main workgroup adds up before writing them (about). */
const BLOCK_CHANNELS = 64;

/** Threads bs_part aims for (enough loads in flight to keep a large GPU's memory busy). */
const PART_THREADS = 1 << 18;
/** Largest scratch (bytes) of one slice of channels: past it the channels run in slices. */
const MAX_SCRATCH = 1 << 30;

/** Lanes per channel (a power of two up to WG), states per lane, and the chunk length. */
export function scanBackwardShape(n: number, chunk: number, sharedBytes: number): { NL: number; S: number; T: number } {
  let NL = 1;
  while (NL < Math.min(n, WG)) NL *= 2;
  const S = Math.ceil(n / NL);
  // workgroup memory of bs_main: (2 + S) T (WG + 1) + 2 T NL S + 6 (WG / NL) T floats; registers: 2 T S <= 64
  const perStep = (2 + S) * (WG + 1) + 2 * NL * S + (6 * WG) / NL;
  const T = Math.max(1, Math.min(chunk, MAX_CHUNK, Math.floor(sharedBytes / 4 / perStep), Math.floor(32 / S)));
  return { NL, S, T };
}

/**
 * The selective scan's gradient (scan-backward.wgsl), chunked like the forward: pack the channel
 * constants and B, C (bs_pack); each chunk's local state, local adjoint and total dt (bs_chunk, in
 * parallel over sequences, chunks, channels and states); the carries across chunks both ways
 * (bs_carry); each chunk recomputed from its carries and walked backwards (bs_main), writing du, dDelta,
 * dz and partial sums; the partials added up in a fixed order (bs_part, bs_sum). Six dispatches for any length.
 * Scratch (f32): e (n + 2) + 2 b l n (packed), 2 b K e n + 3 b K e (per chunk; K = ceil(l / T)) and
 * ceil(e / 64) b l 2n (the dB, dC partials); past `maxScratch` bytes (or the binding limit) the
 * channels run in slices of a multiple of 64, the later ones adding to dB and dC. `s.chunk` is the
 * chunk length (default 16; at most 32, and what the lane's registers (2 T S <= 64 floats) and the
 * workgroup memory allow).
 */
export function selectiveScanBackward(
  bk: KernelHost,
  s: SelectiveScanBackwardArgs,
  { b, l, e, n }: { b: number; l: number; e: number; n: number },
  maxScratch = MAX_SCRATCH,
): void {
  if (b * e * n === 0) return;
  if (n > MAX_N) fail('UNSUPPORTED', `selectiveScanBackward on WebGPU: state size ${n} exceeds ${MAX_N}`);
  for (const t of [s.A, s.D, s.deltaBias, s.B, s.C])
    if (t && t.dtype !== 'f32')
      fail('UNSUPPORTED', 'selectiveScanBackward on WebGPU needs f32 A, B, C, D and deltaBias (training uses f32)');
  const L = bk.d.g.limits;
  const { NL, S, T } = scanBackwardShape(
    n,
    s.chunk ?? DEFAULT_CHUNK,
    Math.max(16384, L.maxComputeWorkgroupStorageSize),
  );
  const CW = WG / NL;
  const code = withConsts('scanBackward', W.scanBackward.code, { NL, S, T });
  const M = W.scanBackward;
  const at = `:${NL}:${S}:${T}`;
  const pipe = <E extends EntryTable>(k: Kernel<E>) => bk.d.pipe(`${k.name}${at}`, k);
  const o = (entry: string) => ({ code, name: `scanBackward.${entry}` });
  const R = b * l;
  const K = l === 0 ? 0 : Math.ceil(l / T);
  const maxGroups = L.maxComputeWorkgroupsPerDimension;
  if (K > maxGroups || b > maxGroups)
    fail(
      'UNSUPPORTED',
      `selectiveScanBackward on WebGPU: ${b} sequences of ${K} chunks exceed ${maxGroups} workgroups`,
    );
  // channels per slice: the scratch of 64 channels is 64 (n + 2 + 2 b K n + 3 b K) + b l 2n floats
  const cap = Math.floor(Math.min(maxScratch, L.maxStorageBufferBindingSize) / 4) - R * 2 * n;
  const per64 = 64 * (n + 2 + 2 * b * K * n + 3 * b * K) + R * 2 * n;
  const slice = Math.max(64, Math.floor(cap / per64) * 64);
  const WK = bk.scratch(Math.max(wkLayout(Math.min(e, slice)).total, 1) * 4);
  for (let c0 = 0; c0 < e; c0 += slice) run(c0, Math.min(slice, e - c0));
  bk.release(WK);

  /** The scratch layout for `es` channels. */
  function wkLayout(es: number) {
    const blocks = Math.ceil(es / CW); // channel blocks of bs_chunk
    const cpb = Math.min(Math.max(1, Math.round(BLOCK_CHANNELS / CW)), blocks); // channel blocks per bs_main workgroup
    const NSB = Math.ceil(blocks / cpb);
    // bs_part's ranges per output (parts (n + 2) e floats) go where SG was (b K e n floats, at least that)
    const parts = Math.max(1, Math.min(Math.ceil(PART_THREADS / (es * n)), Math.floor((b * K * n) / (n + 2))));
    // WK: CH (e, n + 2) | BCO (R, 2n) | SH, SG (b, K, e, n) | SS (b, K, e) | SP (b, K, e, 2) | PB (NSB, R, 2n)
    const CH = 0,
      BCO = CH + es * (n + 2),
      SH = BCO + R * 2 * n,
      SG = SH + b * K * es * n,
      SS = SG + Math.max(b * K * es * n, parts * es * (n + 2)),
      SP = SS + b * K * es,
      PB = SP + b * K * es * 2,
      total = PB + NSB * R * 2 * n;
    checkIndex('selectiveScanBackward', total);
    return { blocks, cpb, NSB, parts, CH, BCO, SH, SG, SS, SP, PB, total };
  }

  /** Channels [c0, c0 + es). */
  function run(c0: number, es: number): void {
    const { blocks, cpb, NSB, parts, CH, BCO, SH, SG, SS, SP, PB } = wkLayout(es);
    const flags =
      (s.z ? 1 : 0) |
      (s.D ? 2 : 0) |
      (s.deltaBias ? 4 : 0) |
      (s.deltaSoftplus ? 8 : 0) |
      (s.h0 ? 16 : 0) |
      (s.dh0 ? 32 : 0) |
      (c0 > 0 ? 64 : 0);
    const params = {
      b,
      l,
      e: es,
      n,
      K,
      NSB,
      cpb,
      R,
      flags,
      parts,
      CH,
      BCO,
      SH,
      SG,
      SS,
      SP,
      PB,
      hbs: e,
      uoff: s.u.offset + c0,
      uld: s.u.ld,
      doff: s.delta.offset + c0,
      dld: s.delta.ld,
      zoff: (s.z?.offset ?? 0) + c0,
      zld: s.z?.ld ?? 0,
      yoff: s.dy.offset + c0,
      yld: s.dy.ld,
      aoff: s.A.offset + c0 * s.A.ld,
      ald: s.A.ld,
      boff: s.B.offset,
      bld: s.B.ld,
      coff: s.C.offset,
      cld: s.C.ld,
      Doff: (s.D?.offset ?? 0) + c0,
      biasoff: (s.deltaBias?.offset ?? 0) + c0,
      h0off: (s.h0?.offset ?? 0) + c0 * (s.h0?.ld ?? 0),
      h0ld: s.h0?.ld ?? 0,
      duoff: s.du.offset + c0,
      duld: s.du.ld,
      ddoff: s.dDelta.offset + c0,
      ddld: s.dDelta.ld,
      dzoff: (s.dz?.offset ?? 0) + c0,
      dzld: s.dz?.ld ?? 0,
      dAoff: s.dA.offset + c0 * s.dA.ld,
      dAld: s.dA.ld,
      dBoff: s.dB.offset,
      dBld: s.dB.ld,
      dCoff: s.dC.offset,
      dCld: s.dC.ld,
      dDoff: (s.dD?.offset ?? 0) + c0,
      dbsoff: (s.dDeltaBias?.offset ?? 0) + c0,
      dh0off: (s.dh0?.offset ?? 0) + c0 * (s.dh0?.ld ?? 0),
      dh0ld: s.dh0?.ld ?? 0,
    };
    const opt = (t: typeof s.z) => (t ? bk.buf(t) : bk.dummyR);
    const d = bk.d;
    const U = bk.buf(s.u),
      DL = bk.buf(s.delta),
      Z = opt(s.z),
      DY = bk.buf(s.dy);
    d.run(
      pipe(kernel(M, 'bs_pack', o('bs_pack'))),
      { Ain: bk.buf(s.A), Dv: opt(s.D), Bias: opt(s.deltaBias), Bm: bk.buf(s.B), Cm: bk.buf(s.C), WK },
      params,
      ...grid(es * (n + 2) + R * 2 * n, 64),
    );
    if (K > 0) d.run(pipe(kernel(M, 'bs_chunk', o('bs_chunk'))), { U, DL, Z, DY, WK }, params, blocks, K, b);
    d.run(
      pipe(kernel(M, 'bs_carry', o('bs_carry'))),
      { WK, h0: opt(s.h0), dh0: s.dh0 ? bk.buf(s.dh0) : bk.dummyW },
      params,
      ...grid(b * es * n, 64),
    );
    if (K > 0)
      d.run(
        pipe(kernel(M, 'bs_main', o('bs_main'))),
        { U, DL, Z, DY, WK, du: bk.buf(s.du), dd: bk.buf(s.dDelta), dz: s.dz ? bk.buf(s.dz) : bk.dummyW },
        params,
        NSB,
        K,
        b,
      );
    d.run(pipe(kernel(M, 'bs_part', o('bs_part'))), { WK }, params, ...grid(parts * es * (n + 1), 64));
    d.run(
      pipe(kernel(M, 'bs_sum', o('bs_sum'))),
      {
        WK,
        dB: bk.buf(s.dB),
        dC: bk.buf(s.dC),
        dA: bk.buf(s.dA),
        dD: s.dD ? bk.buf(s.dD) : bk.dummyW,
        dbias: s.dDeltaBias ? bk.buf(s.dDeltaBias) : bk.dummyW2,
      },
      params,
      ...grid(R * 2 * n + es * n + es, 64),
    );
  }
}
