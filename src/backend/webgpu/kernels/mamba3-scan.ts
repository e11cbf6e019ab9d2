import { fail } from '../../../errors.js';
import type { Tensor } from '../../../tensor/tensor.js';
import type { Mamba3Dims, Mamba3ScanArgs } from '../../contract/mamba3.js';
import { kernel } from '../bindings.js';
import type { GpuStorage } from '../gpu-buffers.js';
import type { KernelHost } from '../kernel-host.js';
import { copyInto } from './copy.js';
import * as W from './wgsl.gen.js';

const MAMBA3_SCAN = kernel(W.mamba3Scan, 'main', { name: 'mamba3Scan' });

/** The kernels' workgroup arrays (mamba3-scan.wgsl, mamba3-scan-backward.wgsl). */
const MAX_RN = 512,
  MAX_RP = 1024,
  MAX_S = 128,
  MAX_R = 8;

/** UNSUPPORTED beyond the workgroup arrays of the scan's kernels (forward and backward share them). */
export function checkMamba3Limits(op: string, d: Mamba3Dims): void {
  const { n, p, R, S } = d;
  if (R * n > MAX_RN || R * p > MAX_RP || S > MAX_S || R > MAX_R)
    fail(
      'UNSUPPORTED',
      `${op} on WebGPU: mimo_rank x d_state ${R * n} (at most ${MAX_RN}), mimo_rank x headdim ${R * p} ` +
        `(at most ${MAX_RP}), ${S} angles (at most ${MAX_S}), rank ${R} (at most ${MAX_R}); use the cpu backend`,
    );
}

/**
 * The small parameters of the scan packed into one scratch buffer (a kernel has 8 storage bindings), as
 * mamba3-scan.wgsl and mamba3-scan-backward.wgsl read them: [dt_bias, B_norm, C_norm, B_bias, C_bias, D,
 * mimo_x, mimo_z, mimo_o, norm weight], each at its offset (absent ones take no room). Release `prm` after.
 */
export function packMamba3Params(
  bk: KernelHost,
  a: Omit<Mamba3ScanArgs, 'y' | 'state'>,
): { prm: GpuStorage; offs: Mamba3ParamOffsets } {
  const parts = [
    ['odt', a.dtBias],
    ['obn', a.BNorm],
    ['ocn', a.CNorm],
    ['obb', a.BBias],
    ['ocb', a.CBias],
    ['od', a.D],
    ['omx', a.mimoX],
    ['omz', a.mimoZ],
    ['omo', a.mimoO],
    ['onw', a.normWeight],
  ] as const;
  let total = 0;
  for (const [, t] of parts) total += t ? t.size : 0;
  const prm = bk.scratch(Math.max(total, 1) * 4);
  const offs = {} as Record<(typeof parts)[number][0], number>;
  let at = 0;
  for (const [k, t] of parts) {
    offs[k] = at;
    if (!t) continue;
    copyInto(bk, t, prm, at, t.cols, 'f32');
    at += t.size;
  }
  return { prm, offs };
}

/** Where packMamba3Params put each parameter in `prm` (floats; an absent one at the next one's offset). */
export type Mamba3ParamOffsets = Record<
  'odt' | 'obn' | 'ocn' | 'obb' | 'ocb' | 'od' | 'omx' | 'omz' | 'omo' | 'onw',
  number
>;

/**
 * The uniforms all the Mamba-3 kernels read, for l tokens a sequence: the dims, proj's view, the packed
 * parameters' offsets (packMamba3Params), the A floor and the norms' eps. Each launcher spreads it into its own.
 */
export function mamba3Uniforms(a: { dims: Mamba3Dims; proj: Tensor }, offs: Mamba3ParamOffsets, l: number) {
  const { h, p, n, g, R, S } = a.dims;
  return {
    l,
    h,
    pd: p,
    n,
    g,
    R,
    S,
    poff: a.proj.offset,
    pld: a.proj.ld,
    ...offs,
    afloor: a.dims.aFloor,
    eps: a.dims.eps,
  };
}

/**
 * Mamba-3's scan (mamba3-scan.wgsl): one workgroup per (sequence, head), token by token. The small
 * parameters are packed into one scratch buffer first (the kernel has 8 storage bindings). Without a state
 * the state lives in scratch buffers and is dropped.
 */
export function mamba3Scan(bk: KernelHost, a: Mamba3ScanArgs, b: number, l: number): void {
  const { h, p, n, R, S } = a.dims;
  checkMamba3Limits('mamba3Scan', a.dims);
  if (b * l === 0) return;
  const { prm, offs } = packMamba3Params(bk, a);
  const st = a.state;
  if (st)
    for (const [k, t] of Object.entries(st) as [string, Tensor][])
      if (t.ld !== t.cols)
        fail('UNSUPPORTED', `mamba3Scan on WebGPU: the state tensor ${k} must be contiguous (a fresh tensor)`);
  const own = st ? null : [h * S, h * p * n, R * h * n, h * p].map((k) => bk.scratch(Math.max(b * k, 1) * 4));
  const pipe = bk.d.pipe(`mamba3Scan:${!!a.mimoX}:${!!a.normWeight}:${a.dims.rotateHalves}:${!!st}`, MAMBA3_SCAN, {
    MIMO: a.mimoX ? 1 : 0,
    NORM: a.normWeight ? 1 : 0,
    HALVES: a.dims.rotateHalves ? 1 : 0,
    HAS_STATE: st ? 1 : 0,
  });
  bk.d.run(
    pipe,
    {
      proj: bk.buf(a.proj),
      prm,
      y: bk.buf(a.y),
      th: st ? bk.buf(st.theta) : own![0],
      ssm: st ? bk.buf(st.ssm) : own![1],
      ks: st ? bk.buf(st.k) : own![2],
      xs: st ? bk.buf(st.x) : own![3],
    },
    {
      ...mamba3Uniforms(a, offs, l),
      yoff: a.y.offset,
      yld: a.y.ld,
      oth: st ? st.theta.offset : 0,
      oss: st ? st.ssm.offset : 0,
      oks: st ? st.k.offset : 0,
      oxs: st ? st.x.offset : 0,
    },
    h,
    b,
  );
  bk.release(prm);
  if (own) for (const s of own) bk.release(s);
}
