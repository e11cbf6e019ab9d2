import { backendOf } from '../backend/backend.js';
import { needsGrad, record, type Tensor } from '../tensor/tensor.js';

/** [a, b] along the last dimension: a (..., p), b (..., q) -> (..., p + q); each gets its columns of the gradient. */
export function concatLast(a: Tensor, b: Tensor): Tensor {
  const bk = backendOf(a);
  const p = a.cols,
    q = b.cols;
  const out = bk.alloc([...a.shape.slice(0, -1), p + q]);
  bk.copy(out.narrow(0, p), a);
  bk.copy(out.narrow(p, q), b);
  if (!needsGrad(a, b)) return out;
  return record('concatLast', out, [a, b], [], (g, [na, nb]) => {
    const part = (start: number, like: Tensor): Tensor => {
      const t = bk.alloc(like.shape);
      bk.copy(t, g.narrow(start, like.cols));
      return t;
    };
    return [na ? part(0, a) : null, nb ? part(p, b) : null];
  });
}
