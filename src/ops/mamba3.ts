import { backendOf } from '../backend/backend.js';
import type { Mamba3Dims } from '../backend/contract/mamba3.js';
import { requireMixerKernel as kernel } from '../backend/contract/mixers.js';
import { needsGrad, record, type Tensor } from '../tensor/tensor.js';

/** Mamba-3's parameters that the scan reads (the mixer's, less in_proj and out_proj). */
export interface Mamba3ScanParams {
  dtBias: Tensor; // (h)
  BNorm: Tensor; // (n)
  CNorm: Tensor; // (n)
  BBias: Tensor; // (h, R, n)
  CBias: Tensor; // (h, R, n)
  D: Tensor; // (h)
  mimoX: Tensor | null; // (h, R, p)
  mimoZ: Tensor | null;
  mimoO: Tensor | null;
  normWeight: Tensor | null; // (e)
}

/**
 * Mamba-3's SSM over whole sequences from the zero state, recorded for autograd: proj (b, l, W) -> y (b, l, e)
 * (backend/contract/mamba3.ts). The backward kernel recomputes the forward, so nothing but the inputs is kept.
 */
export function mamba3Scan(proj: Tensor, w: Mamba3ScanParams, dims: Mamba3Dims): Tensor {
  const bk = backendOf(proj);
  const [b, l] = proj.shape as [number, number, number];
  const y = bk.alloc([b, l, dims.h * dims.p]);
  kernel(bk, 'mamba3Scan')({ y, proj, ...w, state: null, dims });
  const inputs = [proj, w.dtBias, w.BNorm, w.CNorm, w.BBias, w.CBias, w.D, w.mimoX, w.mimoZ, w.mimoO, w.normWeight];
  if (!needsGrad(...inputs.filter((t): t is Tensor => t !== null))) return y;
  const saved = inputs.filter((t): t is Tensor => t !== null);
  return record('mamba3Scan', y, inputs, saved, (g) => {
    const like = (t: Tensor | null): Tensor | null => (t ? bk.alloc(t.shape) : null);
    const grads = {
      dProj: bk.alloc(proj.shape),
      dDtBias: bk.alloc(w.dtBias.shape),
      dBNorm: bk.alloc(w.BNorm.shape),
      dCNorm: bk.alloc(w.CNorm.shape),
      dBBias: bk.alloc(w.BBias.shape),
      dCBias: bk.alloc(w.CBias.shape),
      dD: bk.alloc(w.D.shape),
      dMimoX: like(w.mimoX),
      dMimoZ: like(w.mimoZ),
      dMimoO: like(w.mimoO),
      dNormWeight: like(w.normWeight),
    };
    kernel(bk, 'mamba3ScanBackward')({ g, proj, ...w, dims, ...grads });
    return [
      grads.dProj,
      grads.dDtBias,
      grads.dBNorm,
      grads.dCNorm,
      grads.dBBias,
      grads.dCBias,
      grads.dD,
      grads.dMimoX,
      grads.dMimoZ,
      grads.dMimoO,
      grads.dNormWeight,
    ];
  });
}
