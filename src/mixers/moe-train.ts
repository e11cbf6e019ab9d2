import type { Backend } from '../backend/backend.js';
import * as F from '../ops/ops.js';
import { routeWeights, rowBlocks, scatterRows } from '../ops/moe.js';
import type { Tensor } from '../tensor/tensor.js';
import type { MoeRouteOptions } from '../backend/contract/mixers.js';
import type { UnaryOp } from '../backend/contract/inference.js';
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
 * gradient scatters back); elsewhere every expert runs on every row, weighted by its column of W (zero
 * for the rows that did not choose it: the same sums and gradients, E/k times the products).
 * Stacked experts (Granite: input_linear (E·2I, d)) are trained through their stacks: each expert's
 * projections are differentiable row blocks of the stacked parameters.
 */
export function moeForward(moe: MoeParts, x: Tensor): Tensor {
  const bk = moe.backend;
  const [m, d] = [x.rows, x.cols];
  const E = moe.nExperts;
  const x2 = x.reshape([m, d]);
  const W = routeWeights(F.linear(x2, moe.w.router), moe.w.correctionBias, moe.opts); // (m, E)
  const weights = expertWeights(moe);
  const onesRow = bk.alloc([1, d]);
  bk.fill(onesRow, 1);
  /** Column e of W over the rows of y, as (rows, d): each row's weight repeated. */
  const spread = (col: Tensor): Tensor => F.matmul(col, onesRow); // (n, 1) -> (n, d)
  let out: Tensor | null = moe.shared ? mlpForward(moe.shared.w, moe.shared.activation, x2) : null;
  const addTo = (y: Tensor): void => {
    out = out ? F.add(out, y) : y;
  };
  const host = bk.hostView?.(W);
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
