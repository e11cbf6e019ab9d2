import type { LossReduction } from '../../contract/training.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { rowsGrid } from './launch.js';
import * as W from './wgsl.gen.js';

const ROWS = kernel(W.crossEntropy, 'ce_rows');
const SUM = kernel(W.crossEntropy, 'ce_sum');
const SCALE = kernel(W.crossEntropy, 'ce_scale');
const BWD = kernel(W.crossEntropy, 'ce_bwd');

interface Geometry {
  m: number;
  V: number;
  xoff: number;
  xld: number;
  toff: number;
  ooff: number;
  old: number;
  goff: number;
  mean: number;
}

function geometry(
  out: Tensor,
  logits: Tensor,
  targets: Tensor,
  g: Tensor | null,
  m: number,
  V: number,
  r: LossReduction,
): Geometry {
  const { offset: xoff, ld: xld } = logits;
  return {
    m,
    V,
    xoff,
    xld,
    toff: targets.offset,
    ooff: out.offset,
    old: out.ld,
    goff: g?.offset ?? 0,
    mean: r === 'mean' ? 1 : 0,
  };
}

/** out (1) <- the summed or mean cross-entropy: row losses into scratch, then one workgroup adds them. */
export function crossEntropy(
  bk: KernelHost,
  out: Tensor,
  logits: Tensor,
  targets: Tensor,
  m: number,
  V: number,
  r: LossReduction,
): void {
  const rowl = bk.scratch(Math.max(m, 1) * 4);
  const params = geometry(out, logits, targets, null, m, V, r);
  const x = bk.buf(logits),
    tg = bk.buf(targets);
  if (m > 0 && V > 0) {
    const [gx, gy] = rowsGrid(m);
    bk.d.run(bk.d.pipe('crossEntropy.rows', ROWS), { x, tg, rowl }, params, gx, gy);
  }
  bk.d.run(bk.d.pipe('crossEntropy.sum', SUM), { tg, rowl, o: bk.buf(out) }, params, 1);
  bk.release(rowl);
}

/** dLogits <- g * s * (softmax - onehot): the scale g * s into scratch, then one workgroup per row. */
export function crossEntropyBackward(
  bk: KernelHost,
  dLogits: Tensor,
  logits: Tensor,
  targets: Tensor,
  g: Tensor,
  m: number,
  V: number,
  r: LossReduction,
): void {
  if (m === 0 || V === 0) return;
  const rowl = bk.scratch(16);
  const params = geometry(dLogits, logits, targets, g, m, V, r);
  const tg = bk.buf(targets);
  bk.d.run(bk.d.pipe('crossEntropy.scale', SCALE), { tg, gin: bk.buf(g), rowl }, params, 1);
  const [gx, gy] = rowsGrid(m);
  bk.d.run(bk.d.pipe('crossEntropy.bwd', BWD), { x: bk.buf(logits), tg, rowl, o: bk.buf(dLogits) }, params, gx, gy);
  bk.release(rowl);
}
