import type {
  DiagonalSsmScanArgs,
  SsmConvKernelArgs,
  SsmConvKernelBackwardArgs,
  SsmParams,
} from '../../contract/mixers.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const FWD = kernel(W.ssmConvKernel, 'sk_fwd', { name: 'ssmConvKernel' });
const BWD = kernel(W.ssmConvKernel, 'sk_bwd', { name: 'ssmConvKernelBackward' });
const OUT = kernel(W.ssmConvKernel, 'sk_out', { name: 'ssmConvKernelBackward.out' });

/** The parameter block's fields of the SSM's inputs (the outputs' are zero where unused). */
function inputs(a: SsmParams) {
  return {
    scale: a.scale,
    dtoff: a.dt.offset,
    aroff: a.ARe.offset,
    arld: a.ARe.ld,
    aioff: a.AIm.offset,
    aild: a.AIm.ld,
    croff: a.CRe.offset,
    crld: a.CRe.ld,
    cioff: a.CIm.offset,
    cild: a.CIm.ld,
  };
}
const MODES = kernel(W.ssmConvKernel, 'ds_modes', { name: 'diagonalSsmScan.modes' });
const SCAN = kernel(W.ssmConvKernel, 'ds_scan', { name: 'diagonalSsmScan' });

const NO_OUTPUTS = {
  b: 0,
  l: 0,
  uoff: 0,
  uld: 0,
  yoff: 0,
  yld: 0,
  Doff: 0,
  soff: 0,
  sld: 0,
  flags: 0,
  Koff: 0,
  Kld: 0,
  goff: 0,
  gld: 0,
  ddtoff: 0,
  daroff: 0,
  darld: 0,
  daioff: 0,
  daild: 0,
  dcroff: 0,
  dcrld: 0,
  dcioff: 0,
  dcild: 0,
};

/** S4D's kernel K (L, e) on the GPU (ssm-conv-kernel.wgsl: one thread per (l, c)). */
export function ssmConvKernel(bk: KernelHost, a: SsmConvKernelArgs, L: number, e: number, N: number): void {
  if (L * e === 0) return;
  const b = (t: SsmParams['dt']) => bk.buf(t);
  bk.d.run(
    bk.d.pipe('ssmConvKernel', FWD),
    { dt: b(a.dt), ARe: b(a.ARe), AIm: b(a.AIm), CRe: b(a.CRe), CIm: b(a.CIm), K: b(a.K) },
    { ...NO_OUTPUTS, L, e, N, ...inputs(a), Koff: a.K.offset, Kld: a.K.ld },
    ...grid(L * e, 64),
  );
}

/** Its gradient (one thread per (c, n) walks l; then the outputs and dDt per channel). Scratch: 5·e·N floats. */
export function ssmConvKernelBackward(
  bk: KernelHost,
  a: SsmConvKernelBackwardArgs,
  L: number,
  e: number,
  N: number,
): void {
  if (e === 0) return;
  const b = (t: SsmParams['dt']) => bk.buf(t);
  const GO = bk.scratch(Math.max(5 * e * N, 1) * 4);
  const params = {
    ...NO_OUTPUTS,
    L,
    e,
    N,
    ...inputs(a),
    goff: a.g.offset,
    gld: a.g.ld,
    ddtoff: a.dDt.offset,
    daroff: a.dARe.offset,
    darld: a.dARe.ld,
    daioff: a.dAIm.offset,
    daild: a.dAIm.ld,
    dcroff: a.dCRe.offset,
    dcrld: a.dCRe.ld,
    dcioff: a.dCIm.offset,
    dcild: a.dCIm.ld,
  };
  if (N > 0)
    bk.d.run(
      bk.d.pipe('ssmConvKernelBackward', BWD),
      {
        dt: b(a.dt),
        ARe: b(a.ARe),
        AIm: b(a.AIm),
        CRe: b(a.CRe),
        CIm: b(a.CIm),
        g: b(a.g),
        GO,
      },
      params,
      ...grid(e * N, 64),
    );
  bk.d.run(
    bk.d.pipe('ssmConvKernelBackward.out', OUT),
    { GOr: GO, dARe: b(a.dARe), dAIm: b(a.dAIm), dCRe: b(a.dCRe), dCIm: b(a.dCIm), dDt: b(a.dDt) },
    params,
    ...grid(e, 64),
  );
  bk.release(GO);
}

/**
 * The same SSM as a recurrence (the recurrent mode, not differentiated): the modes' Ē, Q, C once, then
 * one thread per (sequence, channel) walks the steps. Scratch: 6·e·N + 2·b·e·N floats.
 */
export function diagonalSsmScan(
  bk: KernelHost,
  a: DiagonalSsmScanArgs,
  b: number,
  l: number,
  e: number,
  N: number,
): void {
  if (b * e === 0) return;
  const buf = (t: SsmParams['dt']) => bk.buf(t);
  const MODE = bk.scratch(Math.max(6 * e * N, 1) * 4),
    H = bk.scratch(Math.max(2 * b * e * N, 1) * 4);
  const params = {
    ...NO_OUTPUTS,
    L: 0,
    e,
    N,
    ...inputs(a),
    b,
    l,
    uoff: a.u.offset,
    uld: a.u.ld,
    yoff: a.y.offset,
    yld: a.y.ld,
    Doff: a.D?.offset ?? 0,
    soff: a.state?.offset ?? 0,
    sld: a.state?.ld ?? 0,
    flags: (a.D ? 1 : 0) | (a.state ? 2 : 0),
  };
  const d = bk.d;
  if (N > 0)
    d.run(
      d.pipe('diagonalSsmScan.modes', MODES),
      { dt: buf(a.dt), ARe: buf(a.ARe), AIm: buf(a.AIm), CRe: buf(a.CRe), CIm: buf(a.CIm), MODE },
      params,
      ...grid(e * N, 64),
    );
  d.run(
    d.pipe('diagonalSsmScan', SCAN),
    {
      MODEr: MODE,
      u: buf(a.u),
      D: a.D ? buf(a.D) : bk.dummyR,
      state: a.state ? buf(a.state) : bk.dummyW,
      y: buf(a.y),
      H,
    },
    params,
    ...grid(b * e, 64),
  );
  bk.release(MODE);
  bk.release(H);
}
