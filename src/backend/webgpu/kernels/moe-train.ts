import type { MoeExpertProductArgs, MoeExpertProductBackwardArgs, MoePairs } from '../../contract/moe-train.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { fill } from './copy.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

// the inference kernels this form shares (kernels/moe-experts.ts): the same names, so the same pipelines
const SLOTS = kernel(W.moeSlots, 'slots', { name: 'moeSlots' });
const LISTS = kernel(W.moeSlots, 'lists', { name: 'moeLists' });
const EXPERT_MATMUL = kernel(W.moeExpertMatmul, 'main', { name: 'moeExpertMatmul' });
const COMBINE = kernel(W.moeCombine, 'combine', { name: 'moeCombine' });
const DX = kernel(W.moeTrain, 'dx', { name: 'moeTrainDx' });
const DW = kernel(W.moeTrain, 'dw', { name: 'moeTrainDw' });
const SLOT_SUM = kernel(W.moeTrain, 'slotSum', { name: 'moeTrainSlotSum' });
const COMBINE_DY = kernel(W.moeTrain, 'combineDy', { name: 'moeTrainCombineDy' });
const COMBINE_DW = kernel(W.moeTrain, 'combineDw', { name: 'moeTrainCombineDw' });

/** Row tile of the tiled kernels (moe-expert-matmul.wgsl, moe-train.wgsl). */
const TILE = 64;

/**
 * The sparse training form of a mixture of experts on the GPU (contract/moe-train.ts): the choice as
 * (row, slot) pairs and per-expert lists (moe-slots.wgsl, as inference), each expert's products over
 * its listed pairs only, forward (moe-expert-matmul.wgsl) and backward (moe-train.wgsl: dA through the
 * untransposed weights, dW_e = dY_e^T X_e over the expert's pairs), the combine and its gradients.
 * Every sum runs in a fixed order (no float atomics): the gradients are deterministic.
 */

/** ids, wts, count, list of the dense weights (m, E) (tensors allocated by the caller). */
export function moePairs(bk: KernelHost, weights: Tensor, pr: MoePairs): void {
  const { m, E, K } = pr;
  if (m === 0) return;
  const [sx, sy] = grid(m, 64);
  bk.d.run(
    bk.d.pipe('moeSlots', SLOTS, {}),
    { weights: bk.buf(weights), ids: bk.buf(pr.ids), wts: bk.buf(pr.wts) },
    { m, E, K, woff: weights.offset, wld: weights.ld },
    sx,
    sy,
  );
  bk.d.run(
    bk.d.pipe('moeLists', LISTS, {}),
    { chosen: bk.buf(pr.ids), count: bk.buf(pr.count), list: bk.buf(pr.list) },
    { m, E, K, woff: 0, wld: 0 },
    E,
  );
}

/** out[i] = w_e a[row(i)] over the listed pairs; out zeroed first (empty slots: 0). */
export function moeExpertProduct(bk: KernelHost, x: MoeExpertProductArgs, P: number, Q: number): void {
  const { out, a, w, pairs: pr } = x;
  fill(bk, out, 0);
  const { m, E, K } = pr;
  if (m === 0) return;
  const tiles = Math.ceil(m / TILE);
  bk.d.run(
    bk.d.pipe(`moeExpertMatmul:0:${x.gather}`, EXPERT_MATMUL, { WT: 0, XGATHER: x.gather ? 1 : 0 }),
    { W: bk.buf(w), a: bk.buf(a), count: bk.buf(pr.count), list: bk.buf(pr.list), o: bk.buf(out) },
    {
      m,
      K,
      q: Q,
      p: P,
      tiles,
      aoff: a.offset,
      ald: a.ld,
      woff: w.offset,
      wld: w.ld,
      wsoff: 0,
      ooff: out.offset,
      old: out.ld,
    },
    Math.ceil(P / TILE),
    E * tiles,
  );
}

/** The uniform block of moe-train.wgsl, unused fields 0. */
const NO_PARAMS = { P: 0, Q: 0, tiles: 0, aoff: 0, ald: 0, woff: 0, wld: 0, goff: 0, gld: 0, ooff: 0, old: 0 };
function params(pr: MoePairs, o: Partial<typeof NO_PARAMS>): typeof NO_PARAMS & { m: number; K: number; E: number } {
  return { m: pr.m, K: pr.K, E: pr.E, ...NO_PARAMS, ...o };
}

/**
 * dA (through a pair-space scratch summed over slots when gathered) and dW of a product, each expert
 * over its listed pairs; g zero on the empty slots.
 */
export function moeExpertProductBackward(
  bk: KernelHost,
  x: MoeExpertProductBackwardArgs,
  P: number,
  Q: number,
  /** (m·K, Q) f32 scratch for the gathered dA per pair (gather only). */
  perPair: Tensor | null,
): void {
  const { dA, dW, g, a, w, pairs: pr } = x;
  const { m, E } = pr;
  const lists = { count: bk.buf(pr.count), list: bk.buf(pr.list) };
  if (dA) {
    // dA per pair (n, Q); unlisted pairs 0
    const tgt = x.gather ? perPair! : dA;
    fill(bk, tgt, 0);
    if (m > 0) {
      const tiles = Math.ceil(m / TILE);
      bk.d.run(
        bk.d.pipe('moeTrainDx', DX, {}),
        { W: bk.buf(w), a: bk.buf(g), ...lists, o: bk.buf(tgt) },
        params(pr, {
          P,
          Q,
          tiles,
          aoff: g.offset,
          ald: g.ld,
          woff: w.offset,
          wld: w.ld,
          ooff: tgt.offset,
          old: tgt.ld,
        }),
        Math.ceil(Q / TILE),
        E * tiles,
      );
    }
    if (x.gather && m > 0) {
      const [sx, sy] = grid(m * Q);
      bk.d.run(
        bk.d.pipe('moeTrainSlotSum', SLOT_SUM, {}),
        { a: bk.buf(tgt), o: bk.buf(dA) },
        params(pr, { Q, aoff: tgt.offset, ald: tgt.ld, ooff: dA.offset, old: dA.ld }),
        sx,
        sy,
      );
    }
  }
  if (dW) {
    const tiles = Math.ceil(P / TILE);
    bk.d.run(
      bk.d.pipe(`moeTrainDw:${x.gather}`, DW, { XGATHER: x.gather ? 1 : 0 }),
      { a: bk.buf(a), g: bk.buf(g), ...lists, o: bk.buf(dW) },
      params(pr, {
        P,
        Q,
        tiles,
        aoff: a.offset,
        ald: a.ld,
        goff: g.offset,
        gld: g.ld,
        ooff: dW.offset,
        old: dW.ld,
      }),
      Math.ceil(Q / TILE),
      E * tiles,
    );
  }
}

/** out (m, d) <- Σ_s wts · y over the filled slots, in slot order (moe-combine.wgsl on a zeroed out). */
export function moeCombine(bk: KernelHost, out: Tensor, y: Tensor, pr: MoePairs, d: number): void {
  fill(bk, out, 0);
  const { m, E, K } = pr;
  if (m === 0 || d === 0) return;
  const [cx, cy] = grid(m * d);
  bk.d.run(
    bk.d.pipe('moeCombine', COMBINE, {}),
    { ids: bk.buf(pr.ids), wts: bk.buf(pr.wts), y: bk.buf(y), o: bk.buf(out) },
    { n: m * K, I: 0, U: 0, K, E, d, ooff: out.offset, old: out.ld },
    cx,
    cy,
  );
}

/** The combine's gradients in y (m·K, d) and in the dense weights (m, E). */
export function moeCombineBackward(
  bk: KernelHost,
  dY: Tensor | null,
  dWeights: Tensor | null,
  g: Tensor,
  y: Tensor,
  pr: MoePairs,
  d: number,
): void {
  const { m, K } = pr;
  const sel = { ids: bk.buf(pr.ids) };
  if (dY && m > 0 && d > 0) {
    const [sx, sy] = grid(m * K * d);
    bk.d.run(
      bk.d.pipe('moeTrainCombineDy', COMBINE_DY, {}),
      { ...sel, wts: bk.buf(pr.wts), g: bk.buf(g), o: bk.buf(dY) },
      params(pr, { Q: d, goff: g.offset, gld: g.ld, ooff: dY.offset, old: dY.ld }),
      sx,
      sy,
    );
  }
  if (dWeights) {
    fill(bk, dWeights, 0);
    if (m === 0) return;
    const [sx, sy] = grid(m * K, 64);
    bk.d.run(
      bk.d.pipe('moeTrainCombineDw', COMBINE_DW, {}),
      { ...sel, g: bk.buf(g), a: bk.buf(y), o: bk.buf(dWeights) },
      params(pr, {
        Q: d,
        goff: g.offset,
        gld: g.ld,
        aoff: y.offset,
        ald: y.ld,
        ooff: dWeights.offset,
        old: dWeights.ld,
      }),
      sx,
      sy,
    );
  }
}
