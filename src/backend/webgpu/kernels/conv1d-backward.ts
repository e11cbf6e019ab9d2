import type { CausalConv1dBackwardArgs } from '../../contract/training.js';
import { fail } from '../../../errors.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { checkIndex, grid } from './launch.js';
import * as W from './wgsl.gen.js';

const GS = kernel(W.conv1dBackward, 'conv_gs');
const DX = kernel(W.conv1dBackward, 'conv_dx');
const DW = kernel(W.conv1dBackward, 'conv_dw');
const DW_SUM = kernel(W.conv1dBackward, 'conv_dw_sum');
/** Workgroups the weight gradient should spread over; rows are split into slices until it does. */
const DW_MIN_GROUPS = 1024;
/** Rows a slice keeps at least (16 per lane). */
const DW_MIN_SLICE_ROWS = 64;

/**
 * The causal conv1d's gradient in three dispatches: gs = g * silu'(s) into scratch (s recomputed),
 * dx from gs, then dWeight and dBias as column sums over the b * l rows.
 */
export function conv1dBackward(
  bk: KernelHost,
  a: CausalConv1dBackwardArgs,
  { b, l, e, k }: { b: number; l: number; e: number; k: number },
): void {
  if (a.weight.dtype !== 'f32' || a.bias?.dtype === 'bf16' || a.bias?.dtype === 'f16')
    fail('UNSUPPORTED', 'causalConv1dBackward on WebGPU needs f32 weight and bias (training uses f32 parameters)');
  if (e * k === 0) return;
  checkIndex('causalConv1dBackward', b * l * e);
  const n = b * l * e;
  const gs = bk.scratch(Math.max(n, 1) * 4);
  const consts = { SILU: a.silu ? 1 : 0, HAS_BIAS: a.bias ? 1 : 0 };
  const key = `${a.silu}:${!!a.bias}`;
  const rows = b * l;
  const groups = Math.ceil(e / 64) * (k + 1);
  const slices = Math.max(1, Math.min(Math.ceil(DW_MIN_GROUPS / groups), Math.floor(rows / DW_MIN_SLICE_ROWS)));
  const srows = Math.ceil(rows / slices);
  const params = {
    slices,
    srows,
    b,
    l,
    e,
    k,
    xoff: a.x.offset,
    xld: a.x.ld,
    goff: a.g.offset,
    gld: a.g.ld,
    doff: a.dx.offset,
    dld: a.dx.ld,
    woff: a.weight.offset,
    wld: a.weight.ld,
    boff: a.bias?.offset ?? 0,
    dwoff: a.dWeight.offset,
    dwld: a.dWeight.ld,
    dboff: a.dBias?.offset ?? 0,
  };
  const x = bk.buf(a.x),
    w = bk.buf(a.weight);
  const bias = a.bias ? bk.buf(a.bias) : bk.dummyR;
  if (n > 0) {
    const [gx, gy] = grid(n);
    bk.d.run(bk.d.pipe(`conv1dBackward.gs:${key}`, GS, consts), { x, g: bk.buf(a.g), w, bias, gs }, params, gx, gy);
    bk.d.run(bk.d.pipe(`conv1dBackward.dx:${key}`, DX, consts), { gs, w, dx: bk.buf(a.dx) }, params, gx, gy);
  }
  const dbias = a.dBias ? bk.buf(a.dBias) : bk.dummyW;
  const dw = bk.buf(a.dWeight);
  const pipe = bk.d.pipe(`conv1dBackward.dw:${key}`, DW, consts);
  if (slices === 1) {
    bk.d.run(pipe, { x, gs, dw, dbias, dwp: bk.dummyW2 }, params, Math.ceil(e / 64), k + 1);
  } else {
    const dwp = bk.scratch(slices * (k + 1) * e * 4);
    bk.d.run(pipe, { x, gs, dw, dbias, dwp }, params, Math.ceil(e / 64), k + 1, slices);
    const [sx, sy] = grid((k + 1) * e);
    bk.d.run(bk.d.pipe(`conv1dBackward.dwSum:${key}`, DW_SUM, consts), { dwp, dw, dbias }, params, sx, sy);
    bk.release(dwp);
  }
  bk.release(gs);
}
