import type { FView } from './view.js';

/**
 * The gradient of RMSNorm without a residual (contract in backend/contract/), rows of width d:
 *   y = x * inv * w,  inv = (mean(x^2) + eps)^(-1/2)
 *   dy/dx: dx = inv * (g * w) - x * inv^3 * mean(g * w * x)      (d inv / dx_c = -inv^3 x_c / d)
 *   dw_c  = sum over rows of g_c * x_c * inv
 * In f64 per row; dw accumulated over all rows in f64.
 */
export function rmsnormBackward(
  dx: FView,
  dw: FView,
  g: FView,
  x: FView,
  w: FView,
  m: number,
  d: number,
  eps: number,
): void {
  const DX = dx.data as Float32Array,
    DW = dw.data as Float32Array,
    G = g.data as Float32Array,
    X = x.data as Float32Array,
    W = w.data as Float32Array;
  const accW = new Float64Array(d);
  for (let i = 0; i < m; i++) {
    const xo = x.off + i * x.ld,
      go = g.off + i * g.ld,
      o = dx.off + i * dx.ld;
    let ss = 0;
    for (let c = 0; c < d; c++) ss += X[xo + c] * X[xo + c];
    const inv = 1 / Math.sqrt(ss / d + eps);
    let dot = 0; // sum_c g_c w_c x_c
    for (let c = 0; c < d; c++) {
      const gc = G[go + c],
        xc = X[xo + c];
      dot += gc * W[w.off + c] * xc;
      accW[c] += gc * xc * inv;
    }
    const k = (inv * inv * inv * dot) / d;
    for (let c = 0; c < d; c++) DX[o + c] = inv * G[go + c] * W[w.off + c] - X[xo + c] * k;
  }
  for (let c = 0; c < d; c++) DW[dw.off + c] = accW[c];
}
