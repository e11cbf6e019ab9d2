import { fail, fmtShape } from '../errors.js';
import { backendOf } from '../backend/backend.js';
import type { BinaryOp, UnaryOp } from '../backend/contract/inference.js';
import { requireKernel as kernel, type LossReduction } from '../backend/contract/training.js';
import { needsGrad, record, type Tensor } from '../tensor/tensor.js';

/**
 * The functional layer: each op allocates its output on the inputs' backend and runs one kernel.
 * The parallel forms of the mixers are written with these; the recurrent steps call kernels directly
 * with preallocated outputs.
 *
 * Autograd: when grad mode is on and an input requires a gradient, an op records a GradNode on its
 * output (`record`, the tape in tensor/tensor.ts) with the tensors its backward reads and a closure that turns
 * dL/d(output) into dL/d(inputs) with backend kernels. Backward closures never write into `g` and
 * return fresh contiguous tensors (or `g` itself, reshaped where needed). docs/autograd.md says how
 * to add an op.
 */

/** Linear layer: x (..., q) · W (p, q)^T + bias (p) -> (..., p). W may be f16/bf16. */
export function linear(x: Tensor, w: Tensor, bias: Tensor | null = null): Tensor {
  if (w.rank !== 2)
    fail('SHAPE_MISMATCH', `linear: weight${w.name ? ` ${w.name}` : ''} must be 2-D, got ${fmtShape(w.shape)}`);
  if (x.cols !== w.cols) {
    fail(
      'SHAPE_MISMATCH',
      `linear: input has last dimension ${x.cols} (shape ${fmtShape(x.shape)}), weight${w.name ? ` ${w.name}` : ''} ${fmtShape(w.shape)} expects ${w.cols}`,
    );
  }
  const bk = backendOf(x);
  const out = bk.alloc([...x.shape.slice(0, -1), w.rows]);
  bk.matmul(out, x, w, { transB: true, bias });
  if (!needsGrad(x, w, bias)) return out;
  // y = x W^T + b:  dx = g W,  dW = g^T x,  db = column sums of g   (g, x as (m, p), (m, q) matrices)
  return record('linear', out, [x, w, bias], [x, w], (g, [nx, nw, nb]) => {
    const m = x.rows,
      p = w.rows,
      q = w.cols;
    const g2 = g.reshape([m, p]);
    let dx: Tensor | null = null,
      dw: Tensor | null = null,
      db: Tensor | null = null;
    if (nx) {
      dx = bk.alloc(x.shape);
      bk.matmul(dx, g2, w);
    }
    if (nw) {
      dw = bk.alloc(w.shape);
      bk.matmul(dw, g2, x.reshape([m, q]), { transA: true });
    }
    if (nb) {
      db = bk.alloc([p]);
      kernel(bk, 'reduceRows')('sum', db, g2);
    }
    return [dx, dw, db];
  });
}

/** General matrix product out = op(a) · op(b) for 2-D operands. */
export function matmul(a: Tensor, b: Tensor, transA = false, transB = false): Tensor {
  const m = transA ? a.cols : a.rows;
  const p = transB ? b.rows : b.cols;
  const bk = backendOf(a);
  const out = bk.alloc([m, p]);
  bk.matmul(out, a, b, { transA, transB });
  if (!needsGrad(a, b)) return out;
  // C = op(a) op(b):  d op(a) = G op(b)^T,  d op(b) = op(a)^T G; transposed back to how a, b are stored.
  return record('matmul', out, [a, b], [a, b], (g, [na, nb]) => {
    let da: Tensor | null = null,
      db: Tensor | null = null;
    if (na) {
      da = bk.alloc(a.shape);
      if (!transA)
        bk.matmul(da, g, b, { transB: !transB }); // (m, q) = G · op(b)^T
      else bk.matmul(da, b, g, { transA: transB, transB: true }); // (q, m) = op(b) · G^T
    }
    if (nb) {
      db = bk.alloc(b.shape);
      if (!transB)
        bk.matmul(db, a, g, { transA: !transA }); // (q, p) = op(a)^T · G
      else bk.matmul(db, g, a, { transA: true, transB: transA }); // (p, q) = G^T · op(a)
    }
    return [da, db];
  });
}

/** ids (...) i32 -> (..., d) rows of table (V, d). Ids must be in range (checked by callers that take user input). */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  const bk = backendOf(table);
  const out = bk.alloc([...ids.shape, table.cols]);
  bk.embedding(out, ids, table);
  if (!needsGrad(table)) return out;
  return record('embedding', out, [null, table], [ids], (g) => {
    const dt = bk.zeros(table.shape);
    kernel(bk, 'embeddingBackward')(dt, ids, g);
    return [null, dt];
  });
}

/** RMSNorm over the last dimension. */
export function rmsnorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const bk = backendOf(x);
  const out = bk.alloc(x.shape);
  bk.addRmsnorm(out, x, null, weight, eps);
  if (!needsGrad(x, weight)) return out;
  return record('rmsnorm', out, [x, weight], [x, weight], (g) => {
    const dx = bk.alloc(x.shape),
      dw = bk.alloc(weight.shape);
    kernel(bk, 'rmsnormBackward')(dx, dw, g, x, weight, eps);
    return [dx, dw];
  });
}

/**
 * Causal depthwise conv1d (+ SiLU) over x (b, l, e); with a state, continues from it and updates it.
 * Differentiable without a state only (training runs whole sequences from zeros).
 */
export function causalConv1d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  silu: boolean,
  state: Tensor | null = null,
): Tensor {
  const bk = backendOf(x);
  const rec = needsGrad(x, weight, bias);
  if (rec && state)
    fail(
      'UNSUPPORTED',
      'causalConv1d: gradients through a carried conv state are not supported; run training sequences without a state (or under noGrad)',
    );
  const out = bk.alloc(x.shape);
  bk.causalConv1d(out, x, weight, bias, state, silu);
  if (!rec) return out;
  return record('causalConv1d', out, [x, weight, bias], bias ? [x, weight, bias] : [x, weight], (g) => {
    const dx = bk.alloc(x.shape),
      dw = bk.alloc(weight.shape),
      db = bias ? bk.alloc(bias.shape) : null;
    kernel(bk, 'causalConv1dBackward')({ dx, dWeight: dw, dBias: db, g, x, weight, bias, silu });
    return [dx, dw, db];
  });
}

export interface ScanInputs {
  u: Tensor;
  delta: Tensor;
  A: Tensor;
  B: Tensor;
  C: Tensor;
  D: Tensor | null;
  z: Tensor | null;
  deltaBias: Tensor | null;
  deltaSoftplus: boolean;
  /** Initial state (b, e, n); it is not modified unless it is also `hOut`. */
  h0?: Tensor | null;
  /** Receives the final state (b, e, n); not differentiated. */
  hOut?: Tensor | null;
  /** Chunk length of the backward's state recomputation (default 64). */
  backwardChunk?: number;
}

/** The fused selective scan -> y (b, l, e). */
export function selectiveScan(s: ScanInputs): Tensor {
  const bk = backendOf(s.u);
  const y = bk.alloc(s.u.shape);
  const { u, delta, A, B, C, D, z, deltaBias, deltaSoftplus } = s;
  const inputs = [u, delta, A, B, C, D, z, deltaBias, s.h0 ?? null];
  const rec = needsGrad(...inputs);
  // h0 may also be hOut (overwritten by the forward): the backward needs its value before.
  let h0 = s.h0 ?? null;
  if (rec && h0) {
    const c = bk.alloc(h0.shape);
    bk.copy(c, h0);
    h0 = c;
  }
  bk.selectiveScan({ ...s, y, h0: s.h0 ?? null, hOut: s.hOut ?? null });
  if (!rec) return y;
  const saved = [u, delta, A, B, C, D, z, deltaBias, h0].filter((t): t is Tensor => t !== null);
  return record('selectiveScan', y, inputs, saved, (g, needs) => {
    const like = (t: Tensor | null): Tensor | null => (t ? bk.alloc(t.shape) : null);
    const grads = {
      du: bk.alloc(u.shape),
      dDelta: bk.alloc(delta.shape),
      dA: bk.alloc(A.shape),
      dB: bk.alloc(B.shape),
      dC: bk.alloc(C.shape),
      dD: like(D),
      dz: like(z),
      dDeltaBias: like(deltaBias),
      dh0: needs[8] ? like(h0) : null,
    };
    kernel(
      bk,
      'selectiveScanBackward',
    )({
      dy: g,
      u,
      delta,
      A,
      B,
      C,
      D,
      z,
      deltaBias,
      deltaSoftplus,
      h0,
      ...grads,
      ...(s.backwardChunk ? { chunk: s.backwardChunk } : {}),
    });
    return [grads.du, grads.dDelta, grads.dA, grads.dB, grads.dC, grads.dD, grads.dz, grads.dDeltaBias, grads.dh0];
  });
}

export function unary(op: UnaryOp, x: Tensor): Tensor {
  const bk = backendOf(x);
  const out = bk.alloc(x.shape);
  bk.unary(op, out, x);
  if (!needsGrad(x)) return out;
  return record(op, out, [x], [x, out], (g) => {
    const dx = bk.alloc(x.shape);
    kernel(bk, 'unaryBackward')(op, dx, g, x, out);
    return [dx];
  });
}

/** Elementwise a (op) b; b has a's shape (or a's rows x cols), or is one row of a's width broadcast over its rows. */
export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const bk = backendOf(a);
  const out = bk.alloc(a.shape);
  bk.binary(op, out, a, b);
  if (!needsGrad(a, b)) return out;
  const broadcast = b.size === a.cols && !(b.rows === a.rows && b.cols === a.cols);
  // A gradient for b: summed over a's rows when b was broadcast over them.
  const forB = (t: Tensor): Tensor => {
    if (!broadcast) return t.reshape(b.shape);
    const r = bk.alloc(b.shape);
    kernel(bk, 'reduceRows')('sum', r, t);
    return r;
  };
  const apply = (o: BinaryOp, x: Tensor, y: Tensor): Tensor => {
    const r = bk.alloc(x.shape);
    bk.binary(o, r, x, y);
    return r;
  };
  const negate = (x: Tensor): Tensor => {
    const r = bk.alloc(x.shape);
    bk.unary('neg', r, x);
    return r;
  };
  return record(op, out, [a, b], [a, b, out], (g, [na, nb]) => {
    switch (op) {
      case 'add':
        return [na ? g : null, nb ? forB(g) : null];
      case 'sub':
        return [na ? g : null, nb ? negate(forB(g)) : null];
      case 'mul':
        return [na ? apply('mul', g, b) : null, nb ? forB(apply('mul', g, a)) : null];
      // d(a/b)/db = -a/b^2 = -out/b
      case 'div':
        return [na ? apply('div', g, b) : null, nb ? negate(forB(apply('div', apply('mul', g, out), b))) : null];
    }
  });
}

export const add = (a: Tensor, b: Tensor): Tensor => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor): Tensor => binary('div', a, b);

/** The sum of all elements -> (1). */
export function sum(x: Tensor): Tensor {
  const bk = backendOf(x);
  const cols = bk.alloc([x.cols]);
  kernel(bk, 'reduceRows')('sum', cols, x);
  const out = bk.alloc([1]);
  kernel(bk, 'reduceRows')('sum', out, cols.reshape([x.cols, 1]));
  if (!needsGrad(x)) return out;
  return record('sum', out, [x], [], (g) => {
    // g broadcast to every element: zeros (size, 1) + g (1) as a one-column row broadcast.
    const dx = bk.alloc([x.size, 1]);
    bk.binary('add', dx, bk.zeros([x.size, 1]), g);
    return [dx.reshape(x.shape)];
  });
}

/** The mean of all elements -> (1). */
export function mean(x: Tensor): Tensor {
  return mul(sum(x), backendOf(x).upload(Float32Array.of(1 / x.size), [1]));
}

/**
 * Cross-entropy of logits (..., V) against target ids (...) i32 -> (1): the mean over rows with a
 * target (ids < 0 are ignored, as PyTorch's ignore_index), or the sum. Differentiable in the logits.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, reduction: LossReduction = 'mean'): Tensor {
  const bk = backendOf(logits);
  const out = bk.alloc([1]);
  kernel(bk, 'crossEntropy')(out, logits, targets, reduction);
  if (!needsGrad(logits)) return out;
  return record('crossEntropy', out, [logits, null], [logits, targets], (g) => {
    const dl = bk.alloc(logits.shape);
    kernel(bk, 'crossEntropyBackward')(dl, logits, targets, g, reduction);
    return [dl, null];
  });
}

/** A contiguous copy (of a view). */
export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous) return x;
  const out = backendOf(x).alloc(x.shape);
  backendOf(x).copy(out, x);
  if (!needsGrad(x)) return out;
  return record('contiguous', out, [x], [], (g) => [g]);
}
