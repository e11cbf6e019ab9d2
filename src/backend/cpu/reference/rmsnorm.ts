import { halfToF32 } from '../../../tensor/dtype.js';
import type { FView } from './view.js';

/**
 * Fused residual add + RMSNorm (REFERENCE.md §1), rows of width d:
 *   residual <- residual + xScale · x   (when x is given; the f32 residual stream)
 *   out      <- residual * rsqrt(mean(residual^2) + eps) * weight
 * The mean is accumulated in f64; PyTorch accumulates in f32 (differences ~1e-7 relative).
 */
export function addRmsnorm(
  out: FView,
  residual: FView,
  x: FView | null,
  weight: FView,
  m: number,
  d: number,
  eps: number,
  xScale = 1,
): void {
  const s = Math.fround(xScale); // an f32 multiplier, as a constant row of it would be
  const O = out.data as Float32Array;
  const R = residual.data as Float32Array;
  const w =
    weight.dtype === 'f32'
      ? (weight.data as Float32Array).subarray(weight.off, weight.off + d)
      : halfToF32((weight.data as Uint16Array).subarray(weight.off, weight.off + d), weight.dtype as 'f16' | 'bf16');
  for (let i = 0; i < m; i++) {
    const r = residual.off + i * residual.ld;
    if (x) {
      const X = x.data as Float32Array;
      const xo = x.off + i * x.ld;
      if (xScale === 1) for (let c = 0; c < d; c++) R[r + c] = R[r + c] + X[xo + c];
      else for (let c = 0; c < d; c++) R[r + c] = R[r + c] + Math.fround(X[xo + c] * s);
    }
    let ss = 0;
    for (let c = 0; c < d; c++) ss += R[r + c] * R[r + c];
    const inv = 1 / Math.sqrt(ss / d + eps);
    const o = out.off + i * out.ld;
    for (let c = 0; c < d; c++) O[o + c] = R[r + c] * inv * w[c];
  }
}
