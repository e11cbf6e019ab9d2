import { backendOf, type Backend } from '../backend/backend.js';
import type { MoePairs, MoeTrainKernel, MoeTrainKernels } from '../backend/contract/moe-train.js';
import { MOE_TRAIN_KERNELS } from '../backend/contract/moe-train.js';
import { fail } from '../errors.js';
import { needsGrad, record, Tensor } from '../tensor/tensor.js';

/**
 * Differentiable ops of the sparse training form of a mixture of experts (mixers/moe-train.ts), for
 * backends whose host does not read the choice (WebGPU): the choice becomes (row, slot) pairs on the
 * device (`moePairs`, not differentiated, as in transformers), each projection runs every expert over
 * its listed pairs only, forward and backward, and the combine adds the weighted pairs back into the
 * rows, its gradient reaching the dense routing weights (contract/moe-train.ts).
 */

/** Whether `bk` has every kernel of the sparse form. */
export function hasSparseMoe(bk: Backend): boolean {
  return MOE_TRAIN_KERNELS.every((k) => typeof bk[k] === 'function');
}

function need<K extends MoeTrainKernel>(bk: Backend, k: K): NonNullable<MoeTrainKernels[K]> {
  const f = bk[k];
  if (typeof f !== 'function')
    fail('UNSUPPORTED', `the ${bk.name} backend has no ${k} kernel (the sparse mixture of experts)`, {
      backend: bk.name,
      kernel: k,
    });
  return f.bind(bk) as NonNullable<MoeTrainKernels[K]>;
}

/** The (row, slot) pairs of the dense routing weights (m, E), each row at most K experts: the choice. */
export function moePairs(weights: Tensor, K: number): MoePairs {
  return need(backendOf(weights), 'moePairs')(weights, K);
}

/**
 * A projection of the experts over the pairs: out[i] = w_e a[row(i)] (m·K, P), expert e = ids[i],
 * row(i) = i / K (gather: a the tokens' rows (m, Q)) or i (a (m·K, Q)). `w` the experts' stack
 * (E·P, Q). The gradient reaches a and the experts' weights: `blocks` (E tensors (P, Q), the views of
 * the stack the model's parameters are: each gets its rows of dW) or, without them, the stack itself.
 */
export function expertProduct(
  a: Tensor,
  w: Tensor,
  blocks: readonly Tensor[] | null,
  pairs: MoePairs,
  gather: boolean,
): Tensor {
  const bk = backendOf(a);
  const { m, E, K } = pairs;
  const P = w.rows / E,
    Q = w.cols;
  const out = bk.alloc([m * K, P]);
  need(bk, 'moeExpertProduct')({ out, a, w, pairs, gather });
  const weights = blocks ?? [w];
  if (!needsGrad(a, ...weights)) return out;
  const wantA = needsGrad(a),
    wantW = needsGrad(...weights);
  return record('expertProduct', out, [a, ...weights], [a, w, pairs.ids, pairs.wts, pairs.count, pairs.list], (g) => {
    const dA = wantA ? bk.alloc(a.shape) : null;
    const dW = wantW ? bk.alloc([E * P, Q]) : null;
    need(bk, 'moeExpertProductBackward')({ dA, dW, g, a, w, pairs, gather });
    if (!dW) return [dA, ...weights.map(() => null)];
    if (!blocks) return [dA, dW];
    // expert e's gradient: its rows of the stack's (views; the engine copies them into the leaves)
    const view = (e: number): Tensor =>
      new Tensor(dW.backend, dW.storage, [P, Q], 'f32', dW.offset + e * P * dW.ld, dW.ld, dW);
    return [dA, ...blocks.map((_, e) => view(e))];
  });
}

/**
 * out (m, d) = Σ over each row's filled slots of weights[r, ids[i]] · y[i], in slot (= expert) order;
 * y (m·K, d). The gradient reaches y and the dense routing weights (m, E) (the choice held fixed).
 */
export function combinePairs(y: Tensor, weights: Tensor, pairs: MoePairs): Tensor {
  const bk = backendOf(y);
  const out = bk.alloc([pairs.m, y.cols]);
  need(bk, 'moeCombine')(out, y, pairs);
  if (!needsGrad(y, weights)) return out;
  const wantY = needsGrad(y),
    wantW = needsGrad(weights);
  return record('combinePairs', out, [y, weights], [y, pairs.ids, pairs.wts], (g) => {
    const dY = wantY ? bk.alloc(y.shape) : null;
    const dW = wantW ? bk.alloc(weights.shape) : null;
    need(bk, 'moeCombineBackward')(dY, dW, g, y, pairs);
    return [dY, dW];
  });
}
