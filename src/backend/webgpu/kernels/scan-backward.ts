import type { SelectiveScanBackwardArgs } from '../../contract/training.js';
import { fail } from '../../../errors.js';
import { kernel, type EntryTable, type Kernel } from '../bindings.js';
import type { GpuStorage } from '../gpu-buffers.js';
import type { KernelHost } from '../kernel-host.js';
import { checkIndex, grid, withConsts } from './launch.js';
import * as W from './wgsl.gen.js';

/** Largest state size: the per-thread state arrays live in registers, and WG * 2n floats in workgroup memory. */
const MAX_N = 256;

/**
 * The selective scan's gradient (scan-backward.wgsl): pack the inputs, one thread per (sequence,
 * channel) walks its sequence (chunked recompute, as the CPU reference), unpack the outputs and add up the dB, dC
 * partials. Scratch: the packed copies (about 7 b·l·e + 2 b·l·n floats), per (sequence, channel)
 * (l/T + 2T)·n floats of work slots, and b·l·2n floats of partials per workgroup of channels.
 */
export function selectiveScanBackward(
  bk: KernelHost,
  s: SelectiveScanBackwardArgs,
  { b, l, e, n }: { b: number; l: number; e: number; n: number },
): void {
  if (b * e * n === 0) return;
  if (n > MAX_N) fail('UNSUPPORTED', `selectiveScanBackward on WebGPU: state size ${n} exceeds ${MAX_N}`);
  for (const t of [s.A, s.D, s.deltaBias, s.B, s.C])
    if (t && t.dtype !== 'f32')
      fail('UNSUPPORTED', 'selectiveScanBackward on WebGPU needs f32 A, B, C, D and deltaBias (training uses f32)');
  let WG = 64;
  while (WG > 1 && WG * 2 * n > 4096) WG /= 2;
  const code = withConsts('scanBackward', W.scanBackward.code, { N: n, WG });
  const M = W.scanBackward;
  const at = `:${n}:${WG}`;
  const pipe = <E extends EntryTable>(k: Kernel<E>) => bk.d.pipe(`${k.name}${at}`, k);
  const o = (entry: string) => ({ code, name: `scanBackward.${entry}` });

  const R = b * l;
  const T = Math.max(1, Math.min(s.chunk ?? 64, l));
  const nch = Math.ceil(l / T);
  const G = Math.ceil(e / WG);
  const E = G * WG;
  const slots = nch * n + (2 * T + 1) * n + 3 * T;
  const part = slots * b * E;
  checkIndex('selectiveScanBackward', part + G * R * 2 * n);
  const goSize = 3 * R * e + b * e * (n + 2) + b * e * n;
  const scratch: GpuStorage[] = [];
  const take = (floats: number): GpuStorage => {
    const x = bk.scratch(Math.max(floats, 1) * 4);
    scratch.push(x);
    return x;
  };
  const IN = take(4 * R * e),
    BC = take(R * 2 * n),
    chan = take(e * (n + 2)),
    GO = take(goSize),
    WK = take(part + G * R * 2 * n);

  const flags = (s.z ? 1 : 0) | (s.D ? 2 : 0) | (s.deltaBias ? 4 : 0) | (s.deltaSoftplus ? 8 : 0) | (s.h0 ? 16 : 0);
  const params = {
    b,
    l,
    e,
    T,
    nch,
    G,
    E,
    R,
    flags,
    part,
    uoff: s.u.offset,
    uld: s.u.ld,
    doff: s.delta.offset,
    dld: s.delta.ld,
    zoff: s.z?.offset ?? 0,
    zld: s.z?.ld ?? 0,
    yoff: s.dy.offset,
    yld: s.dy.ld,
    aoff: s.A.offset,
    ald: s.A.ld,
    boff: s.B.offset,
    bld: s.B.ld,
    coff: s.C.offset,
    cld: s.C.ld,
    Doff: s.D?.offset ?? 0,
    biasoff: s.deltaBias?.offset ?? 0,
    h0off: s.h0?.offset ?? 0,
    h0ld: s.h0?.ld ?? 0,
    duoff: s.du.offset,
    duld: s.du.ld,
    ddoff: s.dDelta.offset,
    ddld: s.dDelta.ld,
    dzoff: s.dz?.offset ?? 0,
    dzld: s.dz?.ld ?? 0,
    dAoff: s.dA.offset,
    dAld: s.dA.ld,
    dBoff: s.dB.offset,
    dBld: s.dB.ld,
    dCoff: s.dC.offset,
    dCld: s.dC.ld,
    dDoff: s.dD?.offset ?? 0,
    dbsoff: s.dDeltaBias?.offset ?? 0,
    dh0off: s.dh0?.offset ?? 0,
    dh0ld: s.dh0?.ld ?? 0,
  };
  const g64 = (threads: number) => grid(threads, 64);
  const opt = (t: typeof s.z) => (t ? bk.buf(t) : bk.dummyR);
  const d = bk.d;
  if (R > 0) {
    const z = opt(s.z);
    d.run(
      pipe(kernel(M, 'sb_pack', o('sb_pack'))),
      { U: bk.buf(s.u), dl: bk.buf(s.delta), z, dy: bk.buf(s.dy), IN },
      params,
      ...g64(R * e),
    );
    d.run(
      pipe(kernel(M, 'sb_packbc', o('sb_packbc'))),
      { Bm: bk.buf(s.B), Cm: bk.buf(s.C), BC },
      params,
      ...g64(R * n),
    );
  }
  d.run(
    pipe(kernel(M, 'sb_chan', o('sb_chan'))),
    { A: bk.buf(s.A), D: opt(s.D), bias: opt(s.deltaBias), chan },
    params,
    ...g64(e),
  );
  d.run(
    pipe(kernel(M, 'sb_main', o('sb_main'))),
    { h0: opt(s.h0), INr: IN, BCr: BC, chanr: chan, GO, WK },
    params,
    G,
    b,
  );
  if (R > 0) {
    const dz = s.dz ? bk.buf(s.dz) : bk.dummyW;
    d.run(
      pipe(kernel(M, 'sb_rows', o('sb_rows'))),
      { GOr: GO, du: bk.buf(s.du), dd: bk.buf(s.dDelta), dz },
      params,
      ...g64(R * e),
    );
    d.run(
      pipe(kernel(M, 'sb_sum', o('sb_sum'))),
      { WKr: WK, dB: bk.buf(s.dB), dC: bk.buf(s.dC) },
      params,
      ...g64(R * 2 * n),
    );
  }
  const dD = s.dD ? bk.buf(s.dD) : bk.dummyW,
    dbias = s.dDeltaBias ? bk.buf(s.dDeltaBias) : bk.dummyW2;
  d.run(pipe(kernel(M, 'sb_chans', o('sb_chans'))), { GOr: GO, dA: bk.buf(s.dA), dD, dbias }, params, ...g64(e));
  if (s.dh0) d.run(pipe(kernel(M, 'sb_h0', o('sb_h0'))), { GOr: GO, dh0: bk.buf(s.dh0) }, params, ...g64(b * e * n));
  for (const x of scratch) bk.release(x);
}
