import { discretise, type SsmViews } from './ssm-conv-kernel.js';
import type { FView } from './view.js';

/**
 * The diagonal LTI SSM as a recurrence (contract in backend/contract/), the recurrent mode of S4D:
 *   h_t = Ē ⊙ h_{t−1} + Q · u_t,   Ē = exp(dt·A), Q = (Ē − 1)/A        (complex, per channel and mode)
 *   y_t = scale · Re(sum_n C_n · h_t,n) + D · u_t
 * Unrolled, y_t = sum_{j<=t} scale·Re(C·Q·Ē^{t−j}) u_j + D u_t: the convolution mode's K (ssm-conv-kernel.ts).
 * state (b, e, 2N): [Re h (N), Im h (N)] per channel; read first, written last.
 */
export function diagonalSsmScan(
  y: FView,
  u: FView,
  D: FView | null,
  state: FView | null,
  p: SsmViews,
  b: number,
  l: number,
  e: number,
  N: number,
  scale: number,
): void {
  const Y = y.data as Float32Array,
    U = u.data as Float32Array;
  const S = state ? (state.data as Float32Array) : null;
  const d = new Float64Array(13);
  const er = new Float64Array(N),
    ei = new Float64Array(N),
    qr = new Float64Array(N),
    qi = new Float64Array(N),
    cr = new Float64Array(N),
    ci = new Float64Array(N);
  const hr = new Float64Array(N),
    hi = new Float64Array(N);
  for (let c = 0; c < e; c++) {
    for (let n = 0; n < N; n++) {
      discretise(p, c, n, d);
      er[n] = d[2];
      ei[n] = d[3];
      qr[n] = d[4];
      qi[n] = d[5];
      cr[n] = d[10];
      ci[n] = d[11];
    }
    const dv = D ? (D.data as Float32Array)[D.off + c] : 0;
    for (let bi = 0; bi < b; bi++) {
      const so = state ? state.off + (bi * e + c) * state.ld : 0;
      for (let n = 0; n < N; n++) {
        hr[n] = S ? S[so + n] : 0;
        hi[n] = S ? S[so + N + n] : 0;
      }
      for (let t = 0; t < l; t++) {
        const row = bi * l + t;
        const x = U[u.off + row * u.ld + c];
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const r = er[n] * hr[n] - ei[n] * hi[n] + qr[n] * x;
          const i = er[n] * hi[n] + ei[n] * hr[n] + qi[n] * x;
          hr[n] = r;
          hi[n] = i;
          acc += cr[n] * r - ci[n] * i;
        }
        Y[y.off + row * y.ld + c] = scale * acc + dv * x;
      }
      if (S)
        for (let n = 0; n < N; n++) {
          S[so + n] = hr[n];
          S[so + N + n] = hi[n];
        }
    }
  }
}
