import type { AdamWStepOptions } from '../../contract/training.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const ADAMW = kernel(W.adamw, 'main', { name: 'adamwStep' });

/**
 * One AdamW step in place on GPU buffers (parameters and moments never leave the device); the bias
 * corrections are computed here in f64 and passed as f32.
 */
export function adamwStep(
  bk: KernelHost,
  param: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  o: AdamWStepOptions,
): void {
  const n = param.rows * param.cols;
  if (n === 0) return;
  const [gx, gy] = grid(n);
  bk.d.run(
    bk.d.pipe('adamwStep', ADAMW),
    { grad: bk.buf(grad), param: bk.buf(param), m: bk.buf(m), v: bk.buf(v) },
    {
      rows: param.rows,
      cols: param.cols,
      n,
      poff: param.offset,
      pld: param.ld,
      goff: grad.offset,
      gld: grad.ld,
      moff: m.offset,
      mld: m.ld,
      voff: v.offset,
      vld: v.ld,
      b1: o.beta1,
      b2: o.beta2,
      eps: o.eps,
      gs: o.gradScale ?? 1,
      decay: 1 - o.lr * o.weightDecay,
      stepSize: o.lr / (1 - o.beta1 ** o.step),
      bc2: Math.sqrt(1 - o.beta2 ** o.step),
    },
    gx,
    gy,
  );
}
