import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import * as F from '../ops/ops.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * A low-rank adapter (LoRA; Zamba2's per-call adapters on its shared blocks' projections): beside a
 * projection W x it adds up(down(x)), so a weight shared by several call sites gets a rank-r correction
 * of each site's own without a copy of W:
 *   y = W x + B (A x)      A = down (r, k), B = up (p, r), x (m, k), y (m, p)
 * `apply` is the differentiable form (training); `addTo` and `stepAddTo` add in place (inference). The
 * step's (m, r) buffer is made once per row count.
 */
export class LowRankAdapter {
  private readonly hidden = new Map<number, Tensor>();

  constructor(
    readonly backend: Backend,
    readonly down: Tensor, // (r, k)
    readonly up: Tensor, // (p, r)
  ) {
    if (down.rank !== 2 || up.rank !== 2 || up.cols !== down.rows)
      fail('SHAPE_MISMATCH', `adapter: down (${down.shape.join(', ')}) and up (${up.shape.join(', ')}) do not chain`);
  }

  get rank(): number {
    return this.down.rows;
  }

  /** up(down(x (..., k))) -> (..., p), recorded for autograd (training). */
  apply(x: Tensor): Tensor {
    return F.linear(F.linear(x, this.down), this.up);
  }

  /** y (..., p) += up(down(x (..., k))), in place; the parallel form's rows. */
  addTo(y: Tensor, x: Tensor): void {
    const a = F.linear(x, this.down); // (..., r)
    this.backend.matmul(y, a, this.up, { transB: true, accumulate: true });
  }

  /** The same for one step: y (b, p) += up(down(x (b, k))), through a kept (b, r) buffer. */
  stepAddTo(y: Tensor, x: Tensor): void {
    const m = x.rows;
    let a = this.hidden.get(m);
    if (!a) {
      a = this.backend.alloc([m, this.rank]).keep();
      this.hidden.set(m, a);
    }
    this.backend.matmul(a, x, this.down, { transB: true });
    this.backend.matmul(y, a, this.up, { transB: true, accumulate: true });
  }

  dispose(): void {
    for (const t of this.hidden.values()) t.dispose();
    this.hidden.clear();
  }
}
