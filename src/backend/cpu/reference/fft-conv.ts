import { irfft, nextPow2, rfft } from './fft.js';
import type { FView } from './view.js';

/**
 * Causal long convolution by FFT (contract in backend/contract/):
 *   y[b,t,c] = sum_{j<=t} K[t-j, c] · u[b,j,c]
 * Per channel: the spectrum of the filter (first l taps, zero-padded to n = the power of two >= 2l, so
 * the circular convolution of length n equals the linear one on [0, l)) is computed once and reused for
 * every sequence of the batch: y = irfft(rfft(u) · rfft(K))[:l]. O(b·e·n log n) instead of O(b·e·l²).
 * y, u (b, l, e); K (lk >= l, e).
 */
export function fftConv(y: FView, u: FView, K: FView, b: number, l: number, e: number): void {
  const Y = y.data as Float32Array,
    U = u.data as Float32Array,
    KK = K.data as Float32Array;
  const n = nextPow2(2 * l),
    h = (n >> 1) + 1;
  const buf = new Float64Array(n),
    out = new Float64Array(n);
  const kr = new Float64Array(h),
    ki = new Float64Array(h),
    ur = new Float64Array(h),
    ui = new Float64Array(h);
  for (let c = 0; c < e; c++) {
    buf.fill(0);
    for (let t = 0; t < l; t++) buf[t] = KK[K.off + t * K.ld + c];
    rfft(buf, kr, ki);
    for (let bi = 0; bi < b; bi++) {
      buf.fill(0);
      const base = u.off + bi * l * u.ld + c;
      for (let t = 0; t < l; t++) buf[t] = U[base + t * u.ld];
      rfft(buf, ur, ui);
      for (let k = 0; k < h; k++) {
        const a = ur[k],
          bb = ui[k];
        ur[k] = a * kr[k] - bb * ki[k];
        ui[k] = a * ki[k] + bb * kr[k];
      }
      irfft(ur, ui, out);
      const yo = y.off + bi * l * y.ld + c;
      for (let t = 0; t < l; t++) Y[yo + t * y.ld] = out[t];
    }
  }
}
