import { backendOf } from '../backend/backend.js';
import type { GatedRmsnormOptions, SsdScanArgs } from '../backend/contract/inference.js';
import { requireKernel as kernel } from '../backend/contract/training.js';
import { needsGrad, record, type Tensor } from '../tensor/tensor.js';
import * as F from './ops.js';

/**
 * Functional forms of Mamba-2's kernels (the pattern of `ops.ts`: allocate the output on the inputs'
 * backend, run one kernel, record the backward when an input requires a gradient). The recurrent step
 * calls the kernels directly with its own buffers.
 */

export type SsdScanInputs = Omit<SsdScanArgs, 'y' | 'h0' | 'hOut'> & {
  /** Initial state (b, h, p, n); not modified unless it is also `hOut`. Differentiated. */
  h0?: Tensor | null;
  /** Receives the final state (b, h, p, n); not differentiated. */
  hOut?: Tensor | null;
  /** Chunk length of the backward's state recomputation (default 64). */
  backwardChunk?: number;
};

/** The SSD scan -> y (b, l, h·p), the shape of x. Differentiable in every input but hOut. */
export function ssdScan(s: SsdScanInputs): Tensor {
  const bk = backendOf(s.x);
  const y = bk.alloc(s.x.shape);
  const { x, dt, A, B, C, D, dtBias } = s;
  const inputs = [x, dt, A, B, C, D, dtBias, s.h0 ?? null];
  const rec = needsGrad(...inputs);
  // h0 may also be hOut (overwritten by the forward): the backward needs its value before.
  let h0 = s.h0 ?? null;
  if (rec && h0) {
    const c = bk.alloc(h0.shape);
    bk.copy(c, h0);
    h0 = c;
  }
  const { backwardChunk, ...args } = s;
  bk.ssdScan({ ...args, y, h0: s.h0 ?? null, hOut: s.hOut ?? null });
  if (!rec) return y;
  const saved = [x, dt, A, B, C, D, dtBias, h0].filter((t): t is Tensor => t !== null);
  return record('ssdScan', y, inputs, saved, (g, needs) => {
    const like = (t: Tensor | null): Tensor | null => (t ? bk.alloc(t.shape) : null);
    const grads = {
      dx: bk.alloc(x.shape),
      dDt: bk.alloc(dt.shape),
      dA: bk.alloc(A.shape),
      dB: bk.alloc(B.shape),
      dC: bk.alloc(C.shape),
      dD: like(D),
      dDtBias: like(dtBias),
      dh0: needs[7] ? like(h0) : null,
    };
    kernel(
      bk,
      'ssdScanBackward',
    )({
      ...args,
      dy: g,
      h0,
      ...grads,
      ...(backwardChunk ? { chunk: backwardChunk } : {}),
    });
    return [grads.dx, grads.dDt, grads.dA, grads.dB, grads.dC, grads.dD, grads.dDtBias, grads.dh0];
  });
}

/**
 * Gated RMSNorm over groups of columns -> a new tensor of x's shape. Under recording it is composed
 * of recorded ops (silu, mul, a weightless rmsnorm over rows of one group, mul by the weight), so it
 * needs no backward kernel of its own; the fused kernel runs otherwise.
 */
export function gatedRmsnorm(x: Tensor, z: Tensor | null, weight: Tensor, o: GatedRmsnormOptions): Tensor {
  const bk = backendOf(x);
  if (needsGrad(x, z, weight)) {
    const shape = x.shape,
      e = x.cols,
      gs = o.groupSize;
    const gate = z ? F.unary('silu', z) : null;
    const v = gate && !o.normBeforeGate ? F.mul(x, gate) : F.contiguous(x);
    const ones = bk.upload(new Float32Array(gs).fill(1), [gs]);
    const normed = F.rmsnorm(v.reshape([(v.rows * e) / gs, gs]), ones, o.eps).reshape([v.rows, e]); // (m, e)
    let out = F.mul(normed, weight); // weight (e) broadcast over rows
    if (gate && o.normBeforeGate) out = F.mul(out, gate.reshape([gate.rows, e]));
    return out.reshape(shape);
  }
  const out = bk.alloc(x.shape);
  bk.gatedRmsnorm(out, x, z, weight, o);
  return out;
}
