import type { Tensor } from '../../../tensor/tensor.js';
import type { WebGpuBackend } from '../webgpu-backend.js';
import { grid, rowsGrid } from './launch.js';
import * as W from './wgsl.gen.js';

const src = (entry: string) => ({ name: `conv1d.${entry}`, code: W.conv1d, entry, access: 'rrrww' });
const OUT = src('conv_out');
const STATE = src('conv_state');
const SEQ = src('conv_seq');

/** Longest sequence handled by one thread per channel (conv_seq), and its largest kernel width. */
const SEQ_MAX_L = 8;
const SEQ_MAX_K = 8;

/**
 * Causal depthwise conv1d (+ SiLU) with an optional state. Short inputs (the recurrent step) run one
 * thread per (sequence, channel) that slides the window and updates the state in one dispatch; long
 * ones run one thread per output, then (with a state) a second dispatch moves the last k inputs in.
 */
export function conv1d(bk: WebGpuBackend, out: Tensor, x: Tensor, weight: Tensor, bias: Tensor | null, state: Tensor | null, silu: boolean,
  { b, l, e, k }: { b: number; l: number; e: number; k: number }): void {
  if (b * e === 0) return;
  const consts = { HAS_BIAS: bias ? 1 : 0, HAS_STATE: state ? 1 : 0, SILU: silu ? 1 : 0 };
  const key = `${!!bias}:${!!state}:${silu}`;
  const bufs = [bk.buf(x), bk.buf(weight), bias ? bk.buf(bias) : bk.dummyR, state ? bk.buf(state) : bk.dummyW, bk.buf(out)];
  const params = () => bk.d.params().u(b).u(l).u(e).u(k).u(x.offset).u(x.ld).u(out.offset).u(out.ld)
    .u(weight.offset).u(weight.ld).u(bias?.offset ?? 0).u(state?.offset ?? 0).u(state?.ld ?? 0);
  if (l <= SEQ_MAX_L && k <= SEQ_MAX_K) {
    params();
    const [gx, gy] = grid(b * e);
    bk.d.run(bk.d.pipe(`conv_seq:${key}`, SEQ, consts), bufs, gx, gy);
    return;
  }
  if (l > 0) {
    params();
    const [y, z] = rowsGrid(b * l);
    bk.d.run(bk.d.pipe(`conv_out:${key}`, OUT, consts), bufs, Math.ceil(e / 256), y, z);
  }
  if (state) {
    params();
    const [gx, gy] = grid(b * e);
    bk.d.run(bk.d.pipe(`conv_state:${key}`, STATE, consts), bufs, gx, gy);
  }
}
