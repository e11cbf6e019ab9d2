import { sigmoid } from './math.js';
import type { FView } from './view.js';

/**
 * The gradient of the causal depthwise conv1d without a state (contract in backend/contract/). Per (batch,
 * channel): the pre-activation s_t = bias + sum_j w_j x_{t-k+1+j} is recomputed, gs_t = g_t *
 * silu'(s_t) (or g_t), then
 *   dx_t = sum_j gs_{t+k-1-j} w_j,   dw_j = sum_t gs_t x_{t-k+1+j},   dbias = sum_t gs_t
 * with x before 0 and gs past l - 1 zero. x, g, dx (b, l, e); w, dw (e, k); bias, dbias (e).
 */
export function causalConv1dBackward(
  dx: FView,
  dw: FView,
  dbias: FView | null,
  g: FView,
  x: FView,
  w: FView,
  bias: FView | null,
  b: number,
  l: number,
  e: number,
  k: number,
  act: boolean,
): void {
  const DX = dx.data as Float32Array,
    DW = dw.data as Float32Array,
    G = g.data as Float32Array,
    X = x.data as Float32Array,
    W = w.data as Float32Array;
  const xs = new Float64Array(l); // one channel of x
  const gs = new Float64Array(l); // its gradient at the pre-activation
  const accW = new Float64Array(e * k);
  const accB = new Float64Array(e);
  for (let bi = 0; bi < b; bi++) {
    for (let c = 0; c < e; c++) {
      const wo = w.off + c * w.ld;
      const bv = bias ? (bias.data as Float32Array)[bias.off + c] : 0;
      for (let t = 0; t < l; t++) xs[t] = X[x.off + (bi * l + t) * x.ld + c];
      for (let t = 0; t < l; t++) {
        const gt = G[g.off + (bi * l + t) * g.ld + c];
        if (!act) {
          gs[t] = gt;
          continue;
        }
        let s = bv;
        for (let j = 0; j < k; j++) {
          const ti = t - k + 1 + j;
          if (ti >= 0) s += W[wo + j] * xs[ti];
        }
        const sg = sigmoid(s);
        gs[t] = gt * sg * (1 + s * (1 - sg));
      }
      for (let t = 0; t < l; t++) {
        let sdx = 0;
        for (let j = 0; j < k; j++) {
          const to = t + k - 1 - j;
          if (to < l) sdx += gs[to] * W[wo + j];
        }
        DX[dx.off + (bi * l + t) * dx.ld + c] = sdx;
        const gt = gs[t];
        accB[c] += gt;
        for (let j = 0; j < k; j++) {
          const ti = t - k + 1 + j;
          if (ti >= 0) accW[c * k + j] += gt * xs[ti];
        }
      }
    }
  }
  for (let c = 0; c < e; c++) {
    for (let j = 0; j < k; j++) DW[dw.off + c * dw.ld + j] = accW[c * k + j];
    if (dbias) (dbias.data as Float32Array)[dbias.off + c] = accB[c];
  }
}
