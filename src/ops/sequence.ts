import { requireMixerKernel as kernel, type SsmParams } from '../backend/contract/mixers.js';
import { backendOf } from '../backend/backend.js';
import { needsGrad, record, type Tensor } from '../tensor/tensor.js';

/**
 * Functional ops of the sequence mixers beyond Mamba (S4D, H3, Hyena, attention), recorded for
 * autograd like those of ops.ts (docs/autograd.md): each runs its forward kernel on a fresh output
 * and, when an input requires a gradient, records a backward built from the backward kernels.
 */

/** Causal long convolution by FFT: u (b, l, e), K (lk >= l, e) -> y (b, l, e), y_t = sum_{j<=t} K[t-j] u_j. */
export function fftConv(u: Tensor, K: Tensor): Tensor {
  const bk = backendOf(u);
  const y = bk.alloc(u.shape);
  kernel(bk, 'fftConv')(y, u, K);
  if (!needsGrad(u, K)) return y;
  return record('fftConv', y, [u, K], [u, K], (g) => {
    const du = bk.alloc(u.shape),
      dK = bk.alloc(K.shape);
    kernel(bk, 'fftConvBackward')(du, dK, g, u, K);
    return [du, dK];
  });
}

/** Parameters of a diagonal SSM (S4D): dt (e) > 0, A and C complex (e, N) as real and imaginary parts (the kernels' SsmParams). */
export type SsmTensors = SsmParams;

/** The S4D convolution kernel K (L, e), K[l] = scale·Re(sum_n C (e^{dtA} − 1)/A · e^{l·dtA}). */
export function ssmConvKernel(p: SsmTensors, L: number): Tensor {
  const bk = backendOf(p.dt);
  const K = bk.alloc([L, p.dt.size]);
  kernel(bk, 'ssmConvKernel')({ K, ...p });
  const inputs = [p.dt, p.ARe, p.AIm, p.CRe, p.CIm];
  if (!needsGrad(...inputs)) return K;
  return record('ssmConvKernel', K, inputs, inputs, (g) => {
    const grads = {
      dDt: bk.alloc(p.dt.shape),
      dARe: bk.alloc(p.ARe.shape),
      dAIm: bk.alloc(p.AIm.shape),
      dCRe: bk.alloc(p.CRe.shape),
      dCIm: bk.alloc(p.CIm.shape),
    };
    kernel(bk, 'ssmConvKernelBackward')({ g, ...p, ...grads });
    return [grads.dDt, grads.dARe, grads.dAIm, grads.dCRe, grads.dCIm];
  });
}

/** Causal multi-head softmax attention over whole sequences: q, k (b, l, H·dk), v (b, l, H·dv) -> (b, l, H·dv). */
export function attention(q: Tensor, k: Tensor, v: Tensor, heads: number, scale: number): Tensor {
  const bk = backendOf(q);
  const out = bk.alloc([...q.shape.slice(0, -1), v.cols]);
  kernel(bk, 'attention')({ out, q, k, v, heads, scale });
  if (!needsGrad(q, k, v)) return out;
  return record('attention', out, [q, k, v], [q, k, v], (g) => {
    const dq = bk.alloc(q.shape),
      dk = bk.alloc(k.shape),
      dv = bk.alloc(v.shape);
    kernel(bk, 'attentionBackward')({ dq, dk, dv, g, q, k, v, heads, scale });
    return [dq, dk, dv];
  });
}

/** Rotary position embedding of x (b, l, H·dh), rows at positions start, start + 1, ... */
export function rotary(x: Tensor, headDim: number, start: number, base: number): Tensor {
  const bk = backendOf(x);
  const out = bk.alloc(x.shape);
  kernel(bk, 'rotary')(out, x, { headDim, start, base });
  if (!needsGrad(x)) return out;
  // A rotation's transpose is the rotation by the opposite angle.
  return record('rotary', out, [x], [], (g) => {
    const dx = bk.alloc(x.shape);
    kernel(bk, 'rotary')(dx, g, { headDim, start, base, inverse: true });
    return [dx];
  });
}
