import type { MambaStepArgs } from '../../contract/decode.js';
import { fail, fmtShape } from '../../../errors.js';
import { checkMatmul } from '../../contract/inference.js';
import { checkFloat, checkSameBackend } from '../../contract/checks.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { checkShape } from '../../../tensor/shape.js';
import { dcode, q4Scales, wholeQ4 } from './launch.js';
import { gatedRmsnorm } from './gated-rmsnorm.js';
import { matvec } from './matmul.js';
import * as W from './wgsl.gen.js';

const SCAN_STEP = kernel(W.mambaStep, 'main');

/**
 * Mamba-1's recurrent step for one layer in four dispatches instead of eight:
 *   1. in_proj as a matrix-vector product whose epilogue runs the conv step + SiLU for the u half
 *      (matvec.wgsl, EPI 1): xz <- [silu(conv(u)), z], conv state advanced; with `preNorm` its
 *      prologue normalises x first (matvec.wgsl, NORM), which saves the block's RMSNorm dispatch
 *   2. x_proj: dbc <- xz[:, :e] · x_proj^T (Falcon-Mamba / Jamba: then the Δ/B/C norms, three dispatches)
 *   3. dt_proj + softplus + SSM state update + C contraction + D skip + SiLU(z) gate (mamba-step.wgsl,
 *      16 lanes per channel)
 *   4. out_proj: out <- y · out_proj^T (+ bias); with `preNorm` added into out (the residual add)
 * Returns false (nothing done) for `preNorm` when the backend's `fuseNorm` option is off. Weights may be
 * f32, f16, bf16 or q4 (views of q4 are refused).
 */
export function mambaStep(bk: KernelHost, a: MambaStepArgs): boolean {
  const { x, out, conv, ssm, xz, dbc, y } = a;
  const norm = a.preNorm ?? null;
  if (norm && !bk.options.fuseNorm) return false;
  checkSameBackend(
    'mambaStep',
    x,
    out,
    conv,
    ssm,
    xz,
    dbc,
    y,
    a.inProj,
    a.xProj,
    a.dtProj,
    a.outProj,
    a.A,
    a.D,
    a.dtProjBias,
    a.convWeight,
  );
  const b = x.rows;
  const e = a.A.rows,
    n = a.A.cols,
    r = a.dtRank,
    k = a.convWeight.cols,
    d = x.cols;
  const want = (
    what: string,
    t: { shape: readonly number[]; rows: number; cols: number },
    rows: number,
    cols: number,
  ): void => {
    if (t.rows !== rows || t.cols !== cols)
      fail(
        'SHAPE_MISMATCH',
        `mambaStep: ${what} has shape ${fmtShape(t.shape)}, expected (${rows}, ${cols}) rows x cols`,
      );
  };
  want('xz', xz, b, 2 * e);
  want('dbc', dbc, b, r + 2 * n);
  want('y', y, b, e);
  want('conv state', conv, b * e, k);
  want('ssm state', ssm, b * e, n);
  want('dt_proj.weight', a.dtProj, e, r);
  checkMatmul(xz, x, a.inProj, { transB: true, bias: a.inProjBias }, ['q4']);
  checkMatmul(out, y, a.outProj, { transB: true, bias: a.outProjBias }, ['q4']);
  checkFloat('mambaStep', 'dt_proj.weight', a.dtProj, true, ['q4']);
  for (const w of [a.inProj, a.xProj, a.dtProj, a.outProj]) if (w.dtype === 'q4') wholeQ4(w);
  for (const t of [x, conv, ssm, xz, dbc, y, a.convWeight, a.A, a.D, a.dtProjBias]) {
    if (t.dtype !== 'f32') fail('DTYPE_MISMATCH', `mambaStep: ${t.toString()} must be f32`);
  }
  if (a.convBias && a.convBias.dtype !== 'f32') fail('DTYPE_MISMATCH', 'mambaStep: conv1d.bias must be f32');
  if (norm) {
    checkSameBackend('mambaStep', x, norm.weight);
    checkFloat('mambaStep', 'norm weight', norm.weight, true);
    checkShape('mambaStep', 'norm weight', norm.weight.shape, [d]);
    if (!Number.isFinite(norm.eps) || norm.eps < 0)
      fail('BAD_ARGUMENT', `mambaStep: the norm's eps must be a finite number >= 0, got ${norm.eps}`);
  }
  // 1. [rmsnorm +] in_proj + conv step
  matvec(
    bk,
    xz,
    x,
    a.inProj,
    a.inProjBias,
    false,
    b,
    d,
    2 * e,
    { e, weight: a.convWeight, bias: a.convBias, state: conv },
    norm,
  );
  // 2. x_proj from the conv output (the u half of xz)
  const uc = xz.narrow(0, e);
  checkMatmul(dbc, uc, a.xProj, { transB: true }, ['q4']);
  matvec(bk, dbc, uc, a.xProj, null, false, b, e, r + 2 * n, null, null);
  // 2b. Falcon-Mamba / Jamba: RMS norms on dt_low, B and C (the gated norm kernel without a gate)
  let sel = dbc; // (b, r + 2n) what dt_proj and the scan read
  const nm = a.dtBCNorm;
  if (nm) {
    want('normed dbc', nm.normed, b, r + 2 * n);
    checkSameBackend('mambaStep', dbc, nm.normed, nm.dt, nm.b, nm.c);
    for (const [what, w, len] of [
      ['dt', nm.dt, r],
      ['B', nm.b, n],
      ['C', nm.c, n],
    ] as const) {
      if (w.dtype !== 'f32') fail('DTYPE_MISMATCH', `mambaStep: the ${what} norm weight must be f32`);
      checkShape('mambaStep', `${what} norm weight`, w.shape, [len]);
    }
    const o = { eps: nm.eps, normBeforeGate: false };
    gatedRmsnorm(bk, nm.normed.narrow(0, r), dbc.narrow(0, r), null, nm.dt, { ...o, groupSize: r }, b, r);
    gatedRmsnorm(bk, nm.normed.narrow(r, n), dbc.narrow(r, n), null, nm.b, { ...o, groupSize: n }, b, n);
    gatedRmsnorm(bk, nm.normed.narrow(r + n, n), dbc.narrow(r + n, n), null, nm.c, { ...o, groupSize: n }, b, n);
    sel = nm.normed;
  }
  // 3. dt_proj + scan step + gate
  const t = dcode(a.dtProj.dtype);
  bk.d.run(
    bk.d.pipe(`mamba-step:${t}`, SCAN_STEP, { T: t }),
    {
      xz: bk.buf(xz),
      dbc: bk.buf(sel),
      W: bk.buf(a.dtProj),
      bias: bk.buf(a.dtProjBias),
      A: bk.buf(a.A),
      D: bk.buf(a.D),
      h: bk.buf(ssm),
      y: bk.buf(y),
    },
    {
      b,
      e,
      n,
      r,
      xzoff: xz.offset,
      xzld: xz.ld,
      dboff: sel.offset,
      dbld: sel.ld,
      woff: a.dtProj.offset,
      wld: a.dtProj.ld,
      bboff: a.dtProjBias.offset,
      aoff: a.A.offset,
      ald: a.A.ld,
      Doff: a.D.offset,
      hoff: ssm.offset,
      hld: ssm.ld,
      yoff: y.offset,
      yld: y.ld,
      wsoff: q4Scales(a.dtProj),
    },
    Math.ceil(e / 16),
    b,
  );
  // 4. out_proj [+ residual]
  matvec(bk, out, y, a.outProj, a.outProjBias, !!norm, b, e, d, null, null);
  return true;
}
