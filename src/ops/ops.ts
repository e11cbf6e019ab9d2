import { fail, fmtShape } from '../errors.js';
import type { BinaryOp, UnaryOp } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * The functional layer: each op allocates its output on the inputs' backend and runs one kernel.
 * The parallel forms of the mixers are written with these; the recurrent steps call kernels directly
 * with preallocated outputs. Autograd records through these functions (see `autograd.ts`).
 */

/** Linear layer: x (..., q) · W (p, q)^T + bias (p) -> (..., p). W may be f16/bf16. */
export function linear(x: Tensor, w: Tensor, bias: Tensor | null = null): Tensor {
  if (w.rank !== 2) fail('SHAPE_MISMATCH', `linear: weight${w.name ? ` ${w.name}` : ''} must be 2-D, got ${fmtShape(w.shape)}`);
  if (x.cols !== w.cols) {
    fail('SHAPE_MISMATCH', `linear: input has last dimension ${x.cols} (shape ${fmtShape(x.shape)}), weight${w.name ? ` ${w.name}` : ''} ${fmtShape(w.shape)} expects ${w.cols}`);
  }
  const out = x.backend.alloc([...x.shape.slice(0, -1), w.rows]);
  x.backend.matmul(out, x, w, { transB: true, bias });
  return out;
}

/** General matrix product out = op(a) · op(b) for 2-D operands. */
export function matmul(a: Tensor, b: Tensor, transA = false, transB = false): Tensor {
  const m = transA ? a.cols : a.rows;
  const p = transB ? b.rows : b.cols;
  const out = a.backend.alloc([m, p]);
  a.backend.matmul(out, a, b, { transA, transB });
  return out;
}

/** ids (...) i32 -> (..., d) rows of table (V, d). Ids must be in range (checked by callers that take user input). */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  const out = table.backend.alloc([...ids.shape, table.cols]);
  table.backend.embedding(out, ids, table);
  return out;
}

/** RMSNorm over the last dimension. */
export function rmsnorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const out = x.backend.alloc(x.shape);
  x.backend.addRmsnorm(out, x, null, weight, eps);
  return out;
}

/** Causal depthwise conv1d (+ SiLU) over x (b, l, e); with a state, continues from it and updates it. */
export function causalConv1d(x: Tensor, weight: Tensor, bias: Tensor | null, silu: boolean, state: Tensor | null = null): Tensor {
  const out = x.backend.alloc(x.shape);
  x.backend.causalConv1d(out, x, weight, bias, state, silu);
  return out;
}

export interface ScanInputs {
  u: Tensor; delta: Tensor; A: Tensor; B: Tensor; C: Tensor;
  D: Tensor | null; z: Tensor | null; deltaBias: Tensor | null; deltaSoftplus: boolean;
  /** Initial state (b, e, n); it is not modified unless it is also `hOut`. */
  h0?: Tensor | null;
  /** Receives the final state (b, e, n). */
  hOut?: Tensor | null;
}

/** The fused selective scan -> y (b, l, e). */
export function selectiveScan(s: ScanInputs): Tensor {
  const y = s.u.backend.alloc(s.u.shape);
  s.u.backend.selectiveScan({ ...s, y, h0: s.h0 ?? null, hOut: s.hOut ?? null });
  return y;
}

export function unary(op: UnaryOp, x: Tensor): Tensor {
  const out = x.backend.alloc(x.shape);
  x.backend.unary(op, out, x);
  return out;
}

export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const out = a.backend.alloc(a.shape);
  a.backend.binary(op, out, a, b);
  return out;
}

export const add = (a: Tensor, b: Tensor): Tensor => binary('add', a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binary('mul', a, b);

/** A contiguous copy (of a view). */
export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous) return x;
  const out = x.backend.alloc(x.shape);
  x.backend.copy(out, x);
  return out;
}
