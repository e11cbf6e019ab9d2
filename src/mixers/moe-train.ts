import type { Backend } from '../backend/backend.js';
import * as F from '../ops/ops.js';
import { routeWeights, rowBlocks, scatterRows } from '../ops/moe.js';
import { combinePairs, expertProduct, hasSparseMoe, moePairs } from '../ops/moe-sparse.js';
import type { Tensor } from '../tensor/tensor.js';
import type { MoeRouteOptions } from '../backend/contract/mixers.js';
import type { UnaryOp } from '../backend/contract/inference.js';
import type { MoeExpertsArgs } from '../backend/contract/moe-experts.js';
import { mlpForward, type MlpParts } from './mlp-train.js';

/** What the training form reads of a MixtureOfExperts (moe.ts). */
export interface MoeParts {
  readonly backend: Backend;
  readonly nExperts: number;
  readonly w: { router: Tensor; correctionBias: Tensor | null };
  readonly opts: MoeRouteOptions;
  readonly experts: readonly ExpertParts[];
  readonly shared: ExpertParts | null;
  /** Stacked expert parameters (Granite's input_linear (E·2I, d)) whose row blocks the experts' weights are. */
  readonly stackedExperts: Map<string, Tensor>;
  /** The experts' projections stacked (E·rows, cols) (MixtureOfExperts.stacked), or null. */
  readonly stacked: Omit<MoeExpertsArgs, 'out' | 'x' | 'weights' | 'topK'> | null;
}

interface ExpertParts {
  readonly w: MlpParts;
  readonly activation: 'swiglu' | 'relu2' | UnaryOp;
}

/**
 * The differentiable form of the mixture of experts (MixtureOfExperts), for training, from recorded ops:
 *   W = route(router(x))                     (m, E) dense weights, zero where unchosen (ops/moe.ts)
 *   out = shared(x) + sum_e scatter(W[rows_e, e] ⊙ expert_e(x[rows_e]))
 * as transformers computes it: each expert runs on the rows routed to it, its output weighted and added
 * back; the gradient reaches the chosen experts' weights and, through W, the router. Where the host
 * reads the backend's memory (the CPU) the rows are gathered (`embedding` as a row gather, whose
 * gradient scatters back). Elsewhere (WebGPU) the sparse form of ops/moe-sparse.ts, with no read-back:
 * the choice as (token, slot) pairs on the device, each projection per expert over its listed pairs
 * only (forward and backward), the combine weighted by W (`sparseForward`); it needs the experts
 * stacked, f32, without biases. Failing that (experts the backend could not stack), every expert runs
 * on every row, weighted by its column of W (zero for the rows that did not choose it: the same sums
 * and gradients, E/k times the products).
 * Stacked experts (Granite: input_linear (E·2I, d)) are trained through their stacks: each expert's
 * projections are differentiable row blocks of the stacked parameters.
 */
export function moeForward(moe: MoeParts, x: Tensor): Tensor {
  const bk = moe.backend;
  const [m, d] = [x.rows, x.cols];
  const E = moe.nExperts;
  const x2 = x.reshape([m, d]);
  const W = routeWeights(F.linear(x2, moe.w.router), moe.w.correctionBias, moe.opts); // (m, E)
  let out: Tensor | null = moe.shared ? mlpForward(moe.shared.w, moe.shared.activation, x2) : null;
  const addTo = (y: Tensor): void => {
    out = out ? F.add(out, y) : y;
  };
  const host = bk.hostView?.(W);
  const sparse = host ? null : sparseWeights(moe);
  if (sparse) {
    addTo(sparseForward(moe, sparse, x2, W));
    return out!.reshape(x.shape);
  }
  const weights = expertWeights(moe);
  const onesRow = bk.alloc([1, d]);
  bk.fill(onesRow, 1);
  /** Column e of W over the rows of y, as (rows, d): each row's weight repeated. */
  const spread = (col: Tensor): Tensor => F.matmul(col, onesRow); // (n, 1) -> (n, d)
  for (let e = 0; e < E; e++) {
    const col = F.contiguous(W.narrow(e, 1)); // (m, 1)
    const act = moe.experts[e].activation;
    if (!host) {
      addTo(F.mul(mlpForward(weights[e], act, x2), spread(col)));
      continue;
    }
    const rows: number[] = [];
    for (let r = 0; r < m; r++) if (host.data[host.off + r * host.ld + e] !== 0) rows.push(r);
    if (!rows.length) continue;
    const ids = bk.upload(Int32Array.from(rows), [rows.length], 'i32');
    const ye = mlpForward(weights[e], act, F.embedding(ids, x2)); // (n, d)
    addTo(scatterRows(ids, F.mul(ye, spread(F.embedding(ids, col))), m));
  }
  return (out ?? bk.zeros([m, d])).reshape(x.shape);
}

/** Each expert's weights, its projections as differentiable blocks of the stacked parameters they are views of. */
function expertWeights(moe: MoeParts): MlpParts[] {
  const stacks = [...moe.stackedExperts.values()];
  const blocks = new Map<Tensor, Tensor[]>();
  const own = (t: Tensor | null): Tensor | null => {
    if (!t) return null;
    const base = stacks.find((s) => s.storage === t.storage);
    if (!base?.requiresGrad) return t;
    let bs = blocks.get(base);
    if (!bs) {
      bs = rowBlocks(base, t.rows);
      blocks.set(base, bs);
    }
    return bs[(t.offset - base.offset) / (t.rows * base.ld)];
  };
  return moe.experts.map((ex) => ({
    ...ex.w,
    up: own(ex.w.up)!,
    gate: own(ex.w.gate),
    down: own(ex.w.down)!,
  }));
}

/** A projection's stack (E·rows, cols) and, where the parameters are its per-expert views, those views. */
interface SparseProjection {
  stack: Tensor;
  blocks: Tensor[] | null;
}

/**
 * The stacks the sparse form multiplies by, and what their gradients go to: the stack itself where it
 * is a parameter (Granite's input_linear), else the experts' own tensors, which must be its row blocks
 * (the views MixtureOfExperts made of a stack it copied: Jamba, Nemotron-H). Null where the sparse form
 * does not apply: no stack, not f32, or a backend without its kernels.
 */
function sparseWeights(
  moe: MoeParts,
): { up: SparseProjection; gate: SparseProjection | null; down: SparseProjection } | null {
  const s = moe.stacked;
  if (!s || !hasSparseMoe(moe.backend)) return null;
  const params = new Set(moe.stackedExperts.values());
  const of = (stack: Tensor | null, pick: (w: MlpParts) => Tensor | null): SparseProjection | null | false => {
    if (!stack) return null;
    if (stack.dtype !== 'f32') return false;
    if (params.has(stack)) return { stack, blocks: null };
    const blocks = moe.experts.map((ex) => pick(ex.w));
    const rows = stack.rows / moe.nExperts;
    const isBlock = (t: Tensor | null, e: number): boolean =>
      !!t &&
      t.storage === stack.storage &&
      t.rows === rows &&
      t.cols === stack.cols &&
      t.ld === stack.ld &&
      t.offset === stack.offset + e * rows * stack.ld;
    return blocks.every(isBlock) ? { stack, blocks: blocks as Tensor[] } : false;
  };
  const up = of(s.up, (w) => w.up),
    gate = of(s.gate, (w) => w.gate),
    down = of(s.down, (w) => w.down);
  if (!up || gate === false || !down) return null;
  return { up, gate, down };
}

/**
 * The experts over the (token, slot) pairs (ops/moe-sparse.ts), each on its routed rows only:
 *   g = up_e(x[r]) (pairs, U) ([gate; up] fused), h = act(g) (pairs, I), y = down_e(h) (pairs, d)
 *   out[r] = Σ_s W[r, e_s] · y[r·K + s]
 * An empty slot's rows are never listed nor combined: they get no gradient.
 */
function sparseForward(moe: MoeParts, w: NonNullable<ReturnType<typeof sparseWeights>>, x: Tensor, W: Tensor): Tensor {
  const pairs = moePairs(W, moe.opts.topK);
  const I = w.down.stack.cols;
  const product = (p: SparseProjection, a: Tensor, gather: boolean): Tensor =>
    expertProduct(a, p.stack, p.blocks, pairs, gather);
  const up = product(w.up, x, true); // (pairs, U)
  const activation = moe.experts[0].activation;
  let h: Tensor; // (pairs, I)
  switch (activation) {
    case 'swiglu':
      h = w.gate
        ? F.mul(F.unary('silu', product(w.gate, x, true)), up)
        : F.mul(F.unary('silu', up.narrow(0, I)), up.narrow(I, I));
      break;
    case 'relu2':
      h = F.unary('square', F.unary('relu', up));
      break;
    default:
      h = F.unary(activation, up);
  }
  return combinePairs(product(w.down, F.contiguous(h), false), W, pairs); // (m, d)
}
