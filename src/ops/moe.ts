import { requireMixerKernel, type MoeRouteOptions } from '../backend/contract/mixers.js';
import { requireKernel } from '../backend/contract/training.js';
import { backendOf, type Backend } from '../backend/backend.js';
import { needsGrad, record, Tensor } from '../tensor/tensor.js';

/**
 * Differentiable ops of a mixture of experts (mixers/moe-train.ts), recorded for autograd like those of
 * ops.ts (docs/autograd.md). The choice of experts is not differentiated (as in transformers): the
 * gradient flows through the chosen experts' weights and, from them, into the router's logits.
 */

/** (n, 1) of ones as a row (1, n) or a column (n, 1): broadcasts through matmul. */
function ones(bk: Backend, shape: [number, number]): Tensor {
  const t = bk.alloc(shape);
  bk.fill(t, 1);
  return t;
}

/** Row sums of x (m, E) broadcast back over its columns: (m, E), every column the row's sum. */
function rowSumsBroadcast(bk: Backend, x: Tensor): Tensor {
  const [m, E] = [x.rows, x.cols];
  const s = bk.alloc([m, 1]);
  bk.matmul(s, x, ones(bk, [E, 1])); // (m, 1)
  const out = bk.alloc([m, E]);
  bk.matmul(out, s, ones(bk, [1, E])); // (m, E)
  return out;
}

function apply(bk: Backend, op: 'add' | 'sub' | 'mul' | 'div', a: Tensor, b: Tensor): Tensor {
  const r = bk.alloc(a.shape);
  bk.binary(op, r, a, b);
  return r;
}

function scaled(bk: Backend, x: Tensor, c: number): Tensor {
  if (c === 1) return x;
  const r = bk.alloc(x.shape);
  bk.binary('mul', r, x, bk.upload(new Float32Array(x.cols).fill(c), [x.cols]));
  return r;
}

/**
 * The router's dense weights W (m, E) from its logits (m, E) by the backend's `moeRoute` (zero for the
 * experts a token did not choose), differentiable in the logits with the choice S held fixed
 * (c: the scaling, p: the softmax over all experts, s: the sigmoid, r = rowsum(W ⊙ dW)):
 *   topk-softmax, softmax-topk normalised:  W = c·softmax over S     dl = W ⊙ (dW − r/c)
 *   softmax-topk not normalised:           W = c·p on S              dl = W ⊙ dW − p·r
 *   sigmoid not normalised:                W = c·s on S              dl = W ⊙ dW ⊙ (1 − s)
 *   sigmoid normalised:                    W = c·s / Σ_S s           dl = W ⊙ (1 − s) ⊙ (dW − r/c)
 * The correction bias (sigmoid) moves the choice only; it gets no gradient.
 */
export function routeWeights(logits: Tensor, bias: Tensor | null, o: MoeRouteOptions): Tensor {
  const bk = backendOf(logits);
  const route = requireMixerKernel(bk, 'moeRoute');
  const W = bk.alloc(logits.shape);
  route(W, logits, bias, o);
  if (!needsGrad(logits)) return W;
  return record('routeWeights', W, [logits], [logits, W], (dW) => {
    const c = o.routing === 'topk-softmax' ? 1 : o.scaling;
    const WdW = apply(bk, 'mul', W, dW);
    const r = rowSumsBroadcast(bk, WdW); // (m, E)
    if (o.routing === 'softmax-topk' && !o.normTopk) {
      const p = bk.alloc(logits.shape);
      route(p, logits, null, { ...o, topK: logits.cols, normTopk: false, scaling: 1 }); // softmax over all experts
      return [apply(bk, 'sub', WdW, apply(bk, 'mul', p, r))];
    }
    const centred =
      o.routing === 'sigmoid' && !o.normTopk ? WdW : apply(bk, 'mul', W, apply(bk, 'sub', dW, scaled(bk, r, 1 / c)));
    if (o.routing !== 'sigmoid') return [centred];
    const nl = bk.alloc(logits.shape);
    bk.unary('neg', nl, logits);
    const oneMinusS = bk.alloc(logits.shape);
    bk.unary('sigmoid', oneMinusS, nl); // 1 − sigmoid(l) = sigmoid(−l)
    return [apply(bk, 'mul', centred, oneMinusS)];
  });
}

/**
 * A 2-D parameter t (n·count, C) as n row blocks (count, C) (the experts of a stacked parameter,
 * Granite's input_linear), views, differentiable: block i's gradient lands in its rows of t's. Through
 * one flat (1, n·count·C) reshape, whose column windows are the blocks, so all blocks' gradients fill
 * one buffer.
 */
export function rowBlocks(t: Tensor, count: number): Tensor[] {
  const C = t.cols,
    n = t.rows / count;
  const view = (offset: number): Tensor =>
    new Tensor(t.backend, t.storage, [count, C], t.dtype, offset, C, t.base ?? t);
  if (!needsGrad(t)) return Array.from({ length: n }, (_, i) => view(t.offset + i * count * t.ld));
  const flat = t.reshape([1, t.rows * C]); // recorded
  return Array.from({ length: n }, (_, i) => {
    const win = flat.narrow(i * count * C, count * C); // (1, count·C), recorded
    return record('rowBlock', view(win.offset), [win], [], (g) => [g.reshape([1, count * C])]);
  });
}

/** out (m, d): row ids[i] gets y[i] added (zeros elsewhere); ids (n) i32 distinct rows, y (n, d). Gradient: the rows gathered. */
export function scatterRows(ids: Tensor, y: Tensor, m: number): Tensor {
  const bk = backendOf(y);
  const out = bk.zeros([m, y.cols]);
  requireKernel(bk, 'embeddingBackward')(out, ids, y);
  if (!needsGrad(y)) return out;
  return record('scatterRows', out, [y], [ids], (g) => {
    const dy = bk.alloc(y.shape);
    bk.embedding(dy, ids, g);
    return [dy];
  });
}
