import { irfft, nextPow2, rfft } from './fft.js';
import type { FView } from './view.js';

/**
 * Gradient of `fftConv` (contract in backend/contract/); both are correlations, computed by FFT with the
 * conjugate spectrum (n >= 2l, so lags that wrap around land on zero padding):
 *   du[b,j,c] = sum_{t>=j} K[t-j, c] · g[b,t,c]     = irfft(G · conj(Kf))[j]
 *   dK[m,c]   = sum_{b,t} g[b,t,c] · u[b,t-m,c]     = irfft(sum_b G_b · conj(U_b))[m]
 * du, g, u (b, l, e); dK, K (lk, e): rows m >= l of dK are zero (those taps never touch the output).
 */
export function fftConvBackward(
  du: FView,
  dK: FView,
  g: FView,
  u: FView,
  K: FView,
  b: number,
  l: number,
  e: number,
  lk: number,
): void {
  const DU = du.data as Float32Array,
    DK = dK.data as Float32Array,
    G = g.data as Float32Array,
    U = u.data as Float32Array,
    KK = K.data as Float32Array;
  const n = nextPow2(2 * l),
    h = (n >> 1) + 1;
  const buf = new Float64Array(n),
    out = new Float64Array(n);
  const kr = new Float64Array(h),
    ki = new Float64Array(h),
    gr = new Float64Array(h),
    gi = new Float64Array(h);
  const ur = new Float64Array(h),
    ui = new Float64Array(h),
    pr = new Float64Array(h),
    pi = new Float64Array(h);
  const accR = new Float64Array(h),
    accI = new Float64Array(h);
  for (let c = 0; c < e; c++) {
    buf.fill(0);
    for (let t = 0; t < l; t++) buf[t] = KK[K.off + t * K.ld + c];
    rfft(buf, kr, ki);
    accR.fill(0);
    accI.fill(0);
    for (let bi = 0; bi < b; bi++) {
      buf.fill(0);
      const go = g.off + bi * l * g.ld + c;
      for (let t = 0; t < l; t++) buf[t] = G[go + t * g.ld];
      rfft(buf, gr, gi);
      buf.fill(0);
      const uo = u.off + bi * l * u.ld + c;
      for (let t = 0; t < l; t++) buf[t] = U[uo + t * u.ld];
      rfft(buf, ur, ui);
      for (let k = 0; k < h; k++) {
        // G · conj(Kf) for du; G · conj(U) summed over the batch for dK.
        pr[k] = gr[k] * kr[k] + gi[k] * ki[k];
        pi[k] = gi[k] * kr[k] - gr[k] * ki[k];
        accR[k] += gr[k] * ur[k] + gi[k] * ui[k];
        accI[k] += gi[k] * ur[k] - gr[k] * ui[k];
      }
      irfft(pr, pi, out);
      const duo = du.off + bi * l * du.ld + c;
      for (let t = 0; t < l; t++) DU[duo + t * du.ld] = out[t];
    }
    irfft(accR, accI, out);
    for (let m = 0; m < lk; m++) DK[dK.off + m * dK.ld + c] = m < l ? out[m] : 0;
  }
}
