import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { grid, rowsGrid } from './launch.js';
import * as W from './wgsl.gen.js';

const OUT = kernel(W.conv1d, 'conv_out');
const STATE = kernel(W.conv1d, 'conv_state');
const SEQ = kernel(W.conv1d, 'conv_seq');

/** Longest sequence handled by one thread per channel (conv_seq), and its largest kernel width. */
const SEQ_MAX_L = 8;
const SEQ_MAX_K = 8;

/**
 * Causal depthwise conv1d (+ SiLU) with an optional state. Short inputs (the recurrent step) run one
 * thread per (sequence, channel) that slides the window and updates the state in one dispatch; long
 * ones run one thread per output, then (with a state) a second dispatch moves the last k inputs in.
 */
export function conv1d(
  bk: KernelHost,
  out: Tensor,
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  state: Tensor | null,
  silu: boolean,
  { b, l, e, k }: { b: number; l: number; e: number; k: number },
): void {
  if (b * e === 0) return;
  const consts = { HAS_BIAS: bias ? 1 : 0, HAS_STATE: state ? 1 : 0, SILU: silu ? 1 : 0 };
  const key = `${!!bias}:${!!state}:${silu}`;
  const xs = bk.buf(x),
    st = state ? bk.buf(state) : bk.dummyW;
  const bufs = { x: xs, w: bk.buf(weight), bias: bias ? bk.buf(bias) : bk.dummyR, state: st, o: bk.buf(out) };
  const params = {
    b,
    l,
    e,
    k,
    xoff: x.offset,
    xld: x.ld,
    ooff: out.offset,
    old: out.ld,
    woff: weight.offset,
    wld: weight.ld,
    boff: bias?.offset ?? 0,
    soff: state?.offset ?? 0,
    sld: state?.ld ?? 0,
  };
  if (l <= SEQ_MAX_L && k <= SEQ_MAX_K) {
    const [gx, gy] = grid(b * e);
    bk.d.run(bk.d.pipe(`conv_seq:${key}`, SEQ, consts), bufs, params, gx, gy);
    return;
  }
  if (l > 0) {
    const [y, z] = rowsGrid(b * l);
    bk.d.run(bk.d.pipe(`conv_out:${key}`, OUT, consts), bufs, params, Math.ceil(e / 256), y, z);
  }
  if (state) {
    const [gx, gy] = grid(b * e);
    bk.d.run(bk.d.pipe(`conv_state:${key}`, STATE, consts), { x: xs, state: st }, params, gx, gy);
  }
}
