import { fail } from '../../../errors.js';
import type { Tensor } from '../../../tensor/tensor.js';
import type { Mamba3Dims, Mamba3ScanBackwardArgs } from '../../contract/mamba3.js';
import { type EntryTable, type Kernel, type ParamsOf, kernel } from '../bindings.js';
import type { GpuStorage } from '../gpu-buffers.js';
import type { KernelHost } from '../kernel-host.js';
import { fill } from './copy.js';
import { type Mamba3ParamOffsets, checkMamba3Limits, mamba3Uniforms, packMamba3Params } from './mamba3-scan.js';
import { checkIndex, grid } from './launch.js';
import * as W from './wgsl.gen.js';

const MAIN = kernel(W.mamba3ScanBackward, 'm3b_main', { name: 'mamba3ScanBackward.main' });
export const ROWS = kernel(W.mamba3ScanBackward, 'm3b_rows', { name: 'mamba3ScanBackward.rows' });
const SUM = kernel(W.mamba3ScanBackward, 'm3b_sum', { name: 'mamba3ScanBackward.sum' });

/** Kernel `k` of mamba3-scan-backward.wgsl specialised for `a` (MIMO, the output norm, the rotation's pairing). */
export function m3bPipe<E extends EntryTable>(bk: KernelHost, k: Kernel<E>, a: Mamba3ScanBackwardArgs) {
  const key = `${!!a.mimoX}:${!!a.normWeight}:${a.dims.rotateHalves}`;
  const consts = { MIMO: a.mimoX ? 1 : 0, NORM: a.normWeight ? 1 : 0, HALVES: a.dims.rotateHalves ? 1 : 0 };
  return bk.d.pipe(`${k.name}:${key}`, k, consts);
}

/** The uniforms of the m3b_* kernels (struct P of mamba3-scan-backward.wgsl). */
export type M3bParams = ParamsOf<typeof SUM extends Kernel<infer E> ? E : never>;

/**
 * The m3b_* kernels' uniforms for `a` but the launcher's layout `at` (chunk length T, nch chunks, the b0 and nb
 * sequences of a slice, kw, kpk, ka floats of work slots, partials, sums, nrows rows of DW); m3b_sum's own
 * (cnt ... dld2) zero until sumInto sets them.
 */
export function m3bUniforms(
  a: Mamba3ScanBackwardArgs,
  offs: Mamba3ParamOffsets,
  l: number,
  at: { T: number; nch: number; b0: number; nb: number; kw: number; kpk: number; ka: number; nrows: number },
): M3bParams {
  return {
    ...mamba3Uniforms(a, offs, l),
    ...at,
    goff: a.g.offset,
    gld: a.g.ld,
    doff: a.dProj.offset,
    dld: a.dProj.ld,
    cnt: 0,
    sstride: 0,
    outer: 0,
    ostride: 0,
    len: 0,
    soff: 0,
    dstoff: 0,
    dcols: 1,
    dld2: 1,
  };
}

/**
 * m3b_sum into `dst` (nothing where null): DST[f] = Σ_{s < cnt} SRC[soff + s·sstride + (f / len)·ostride + f % len]
 * for f < outer·len; `base` the launcher's other uniforms.
 */
export function sumInto(
  bk: KernelHost,
  base: M3bParams,
  dst: Tensor | null,
  src: GpuStorage,
  soff: number,
  cnt: number,
  sstride: number,
  outer: number,
  len: number,
  ostride: number,
): void {
  if (!dst) return;
  bk.d.run(
    bk.d.pipe('mamba3ScanBackward.sum', SUM),
    { SRC: src, DST: bk.buf(dst) },
    { ...base, cnt, sstride, outer, ostride, len, soff, dstoff: dst.offset, dcols: dst.cols, dld2: dst.ld },
    ...grid(outer * len, 64),
  );
}

/**
 * The backward's scratch layout for sequences of length l: the chunk length T ≈ √l (it minimises the
 * l/T chunk-start states plus the T + 1 recomputed ones), nch chunks, kw floats of work slots per
 * (sequence, head), kpk floats of partials per (token, head), and the larger of a sequence's work slots
 * and partials (floats; each goes in one storage binding).
 */
export function mamba3BackwardScratch(
  d: Mamba3Dims,
  l: number,
): { T: number; nch: number; kw: number; kpk: number; perSequence: number } {
  const { h, p, n, R, S } = d;
  const T = Math.max(1, Math.ceil(Math.sqrt(l)));
  const nch = Math.ceil(l / T);
  const kw = (nch + T + 2) * p * n + (nch + T + 1) * S + 2 * R * p + R * n;
  const kpk = 2 * R * n + S;
  return { T, nch, kw, kpk, perSequence: Math.max(h * kw, l * h * kpk) };
}

/**
 * Mamba-3's scan backward (mamba3-scan-backward.wgsl): one workgroup per (sequence, head) recomputes
 * the forward chunk by chunk and walks it backwards; the gradients several heads or sequences share
 * come back as partials and are added up after (fixed orders: deterministic). Scratch per (sequence,
 * head): (l/T + T + 2)·p·n + (l/T + T + 1)·S + 2R·p + R·n floats of work slots (T ≈ √l, the chunk
 * length that minimises them), and per (token, head) 2R·n + S floats of partials; sequences go in
 * slices whose scratch fits one storage binding.
 */
export function mamba3ScanBackward(bk: KernelHost, a: Mamba3ScanBackwardArgs, b: number, l: number): void {
  const { h, p, n, g, R, S } = a.dims;
  checkMamba3Limits('mamba3ScanBackward', a.dims);
  const inputs = [
    a.proj,
    a.g,
    a.dtBias,
    a.BNorm,
    a.CNorm,
    a.BBias,
    a.CBias,
    a.D,
    a.mimoX,
    a.mimoZ,
    a.mimoO,
    a.normWeight,
  ];
  for (const t of inputs)
    if (t && t.dtype !== 'f32')
      fail('UNSUPPORTED', `mamba3ScanBackward on WebGPU needs f32 inputs (training uses f32), got ${t.dtype}`);
  const outs = [a.dDtBias, a.dBNorm, a.dCNorm, a.dBBias, a.dCBias, a.dD, a.dMimoX, a.dMimoZ, a.dMimoO, a.dNormWeight];
  if (b * l === 0) {
    for (const t of outs) if (t) fill(bk, t, 0);
    return;
  }
  for (const t of [a.proj, a.g, a.dProj]) checkIndex('mamba3ScanBackward', t.offset + (t.rows - 1) * t.ld + t.cols);

  const scratch: GpuStorage[] = [];
  const take = (floats: number): GpuStorage => {
    const s = bk.scratch(Math.max(floats, 1) * 4);
    scratch.push(s);
    return s;
  };
  const { prm, offs } = packMamba3Params(bk, a);
  scratch.push(prm);

  const { T, nch, kw, kpk, perSequence } = mamba3BackwardScratch(a.dims, l);
  const ka = 2 * R * n + 3 * R * p + p + 2;
  const nrows = b * l * R * g;
  // sequences per slice: the work slots and the partials each within one storage binding
  const maxBytes = Math.min(bk.d.g.limits.maxStorageBufferBindingSize, bk.d.g.limits.maxBufferSize);
  const perSeq = perSequence * 4;
  const nbMax = Math.min(b, Math.floor(maxBytes / perSeq));
  if (nbMax < 1)
    fail(
      'UNSUPPORTED',
      `mamba3ScanBackward on WebGPU: one sequence of length ${l} needs ${perSeq} bytes of scratch in one buffer; ` +
        `the device binds at most ${maxBytes}; train on shorter sequences or use the cpu backend`,
    );
  checkIndex('mamba3ScanBackward', Math.max(b * h * ka, 2 * nrows * n, nbMax * h * kw, nbMax * l * h * kpk));
  const WK = take(nbMax * h * kw),
    PK = take(nbMax * l * h * kpk),
    ACC = take(b * h * ka),
    DW = take(2 * nrows * n);

  const base = m3bUniforms(a, offs, l, { T, nch, b0: 0, nb: 0, kw, kpk, ka, nrows });
  const d = bk.d;
  const main = m3bPipe(bk, MAIN, a);
  const rows = m3bPipe(bk, ROWS, a);
  const proj = bk.buf(a.proj),
    dproj = bk.buf(a.dProj);
  for (let b0 = 0; b0 < b; b0 += nbMax) {
    const nb = Math.min(nbMax, b - b0);
    const params = { ...base, b0, nb };
    d.run(main, { proj, prm, gy: bk.buf(a.g), dproj, WK, PK, ACC }, params, h, nb);
    d.run(rows, { proj, prm, PKr: PK, dproj, DW }, params, ...grid(nb * l * (2 * R * g + S), 64));
  }

  // the shared gradients: sums over the sequences (ACC) or over the rows (DW)
  const add = (dst: Tensor | null, src: GpuStorage, ...at: [number, number, number, number, number, number]) =>
    sumInto(bk, base, dst, src, ...at);
  const perB = h * ka;
  add(a.dBBias, ACC, 0, b, perB, h, R * n, ka);
  add(a.dCBias, ACC, R * n, b, perB, h, R * n, ka);
  add(a.dMimoX, ACC, 2 * R * n, b, perB, h, R * p, ka);
  add(a.dMimoZ, ACC, 2 * R * n + R * p, b, perB, h, R * p, ka);
  add(a.dMimoO, ACC, 2 * R * n + 2 * R * p, b, perB, h, R * p, ka);
  add(a.dNormWeight, ACC, 2 * R * n + 3 * R * p, b, perB, h, p, ka);
  add(a.dD, ACC, 2 * R * n + 3 * R * p + p, b, perB, h, 1, ka);
  add(a.dDtBias, ACC, 2 * R * n + 3 * R * p + p + 1, b, perB, h, 1, ka);
  add(a.dBNorm, DW, 0, nrows, n, 1, n, 0);
  add(a.dCNorm, DW, nrows * n, nrows, n, 1, n, 0);
  for (const s of scratch) bk.release(s);
}
