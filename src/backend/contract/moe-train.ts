import { fail, fmtShape } from '../../errors.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkFloat, checkSameBackend } from './checks.js';

/**
 * A mixture of experts' choice as (row, slot) pairs, made on the device from the dense routing weights
 * (m, E) without reading it back: pair i = r·K + s holds row r's s-th chosen expert in increasing
 * order, ids[i] (E where the row chose fewer than K: an empty slot) with its weight wts[i] (0 there);
 * list[e·m + j], j < count[e], are expert e's pairs in increasing row order. i32 tensors hold u32s.
 */
export interface MoePairs {
  readonly m: number;
  readonly E: number;
  readonly K: number;
  readonly ids: Tensor; // (m·K) i32
  readonly wts: Tensor; // (m·K) f32
  readonly count: Tensor; // (E) i32
  readonly list: Tensor; // (E·m) i32
}

/**
 * A product of the experts over the pairs (the training form's projections, ops/moe-sparse.ts), expert
 * e = ids[i] on pair i's row of a:
 *   out[i] = w_e a[row(i)]      w the stacked experts (E·P, Q) f32, w_e its rows [e·P, (e+1)·P)
 * row(i) = i / K (gather: a is the tokens' rows (m, Q)) or i (a is (m·K, Q), a row per pair); out
 * (m·K, P) is written for the listed pairs only (empty slots keep what out held).
 */
export interface MoeExpertProductArgs {
  out: Tensor; // (m·K, P)
  a: Tensor; // (m, Q) gather, or (m·K, Q)
  w: Tensor; // (E·P, Q) f32
  pairs: MoePairs;
  gather: boolean;
}

/**
 * Its gradients, over each expert's listed pairs only (overwritten; null: not wanted):
 *   dA[i] = g[i] w_e            (m·K, Q); with gather summed over the row's slots in slot order: (m, Q)
 *   dW_e  = Σ_j g[list_j]^T a[row(list_j)]  in list order; zeros for an expert no row chose   (E·P, Q)
 * g (m·K, P) must be 0 on empty slots (the combine's gradient is).
 */
export interface MoeExpertProductBackwardArgs {
  dA: Tensor | null;
  dW: Tensor | null;
  g: Tensor; // (m·K, P)
  a: Tensor;
  w: Tensor;
  pairs: MoePairs;
  gather: boolean;
}

/** The kernels of the sparse training form of a mixture of experts (mixers/moe-train.ts). */
export interface MoeTrainKernels {
  /** The pairs of the dense routing weights (m, E) (nonzero: chosen), each row at most K of them. */
  moePairs?(weights: Tensor, K: number): MoePairs;
  moeExpertProduct?(a: MoeExpertProductArgs): void;
  moeExpertProductBackward?(a: MoeExpertProductBackwardArgs): void;
  /** out (m, d) <- Σ_s wts[r·K + s] · y[r·K + s] in slot order, over the filled slots; y (m·K, d). */
  moeCombine?(out: Tensor, y: Tensor, pairs: MoePairs): void;
  /**
   * Its gradients: dY[i] = wts[i] · g[r] (0 on empty slots) (m·K, d); dWeights[r, ids[i]] = g[r] · y[i],
   * zero where not chosen (m, E): the routing weights' gradient with the choice held fixed.
   */
  moeCombineBackward?(dY: Tensor | null, dWeights: Tensor | null, g: Tensor, y: Tensor, pairs: MoePairs): void;
}

export type MoeTrainKernel = keyof MoeTrainKernels;
export const MOE_TRAIN_KERNELS: readonly MoeTrainKernel[] = [
  'moePairs',
  'moeExpertProduct',
  'moeExpertProductBackward',
  'moeCombine',
  'moeCombineBackward',
];

/** Checks a product's operands; returns (P, Q). */
export function checkMoeExpertProduct(
  op: string,
  a: Tensor,
  w: Tensor,
  pairs: MoePairs,
  gather: boolean,
  out: Tensor | null,
): { P: number; Q: number } {
  checkSameBackend(op, a, w, out, pairs.ids);
  checkFloat(op, 'a', a);
  if (w.dtype !== 'f32') fail('UNSUPPORTED', `${op}: the experts' stack is ${w.dtype}, expected f32 (training)`);
  const { m, E, K } = pairs;
  const Q = w.cols,
    P = w.rows / E;
  if (!Number.isInteger(P)) fail('SHAPE_MISMATCH', `${op}: w has ${w.rows} rows, not a multiple of ${E} experts`);
  const rows = gather ? m : m * K;
  if (a.rows !== rows || a.cols !== Q)
    fail('SHAPE_MISMATCH', `${op}: a has shape ${fmtShape(a.shape)}, expected (${rows}, ${Q})`);
  if (out && (out.rows !== m * K || out.cols !== P))
    fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected (${m * K}, ${P})`);
  return { P, Q };
}

/** Checks the combine's operands (y (m·K, d)); returns d. */
export function checkMoeCombine(op: string, y: Tensor, pairs: MoePairs, ...outs: (Tensor | null)[]): number {
  checkSameBackend(op, y, pairs.ids, ...outs);
  checkFloat(op, 'y', y);
  if (y.rows !== pairs.m * pairs.K)
    fail('SHAPE_MISMATCH', `${op}: y has ${y.rows} rows, expected ${pairs.m * pairs.K} (a row per pair)`);
  return y.cols;
}
