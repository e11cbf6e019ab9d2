import { silu, softplus } from './math.js';
import type { FView } from './view.js';

/**
 * The selective scan of Mamba-1 (S6), REFERENCE.md §1; contract in backend/contract/ (SelectiveScanArgs).
 * One pass per (batch, channel): the d_state values of h live in a small f64 array, so the
 * (b, e, l, n) states are never stored, only h0 -> hOut.
 *
 *   dt   = softplus(delta + deltaBias)            (b, l, e)
 *   h_t  = exp(dt * A) * h_{t-1} + dt * B_t * u_t (e, n) per batch
 *   y_t  = <h_t, C_t> + D * u_t ; y_t *= silu(z_t)
 */
export interface ScanViews {
  y: FView;
  u: FView;
  delta: FView;
  A: FView;
  B: FView;
  C: FView;
  D: FView | null;
  z: FView | null;
  deltaBias: FView | null;
  h0: FView | null;
  hOut: FView | null;
  deltaSoftplus: boolean;
}

export function selectiveScan(s: ScanViews, b: number, l: number, e: number, n: number, c0 = 0, c1 = e): void {
  const Y = s.y.data as Float32Array,
    U = s.u.data as Float32Array,
    DT = s.delta.data as Float32Array;
  const A = s.A.data as Float32Array,
    B = s.B.data as Float32Array,
    C = s.C.data as Float32Array;
  const h = new Float64Array(n);
  const a = new Float64Array(n);
  for (let bi = 0; bi < b; bi++) {
    for (let c = c0; c < c1; c++) {
      // h0 and hOut rows are (b*e) of width n.
      const hrow = bi * e + c;
      if (s.h0) {
        const H = s.h0.data as Float32Array;
        const o = s.h0.off + hrow * s.h0.ld;
        for (let j = 0; j < n; j++) h[j] = H[o + j];
      } else h.fill(0);
      for (let j = 0; j < n; j++) a[j] = A[s.A.off + c * s.A.ld + j];
      const dv = s.D ? (s.D.data as Float32Array)[s.D.off + c] : 0;
      const bias = s.deltaBias ? (s.deltaBias.data as Float32Array)[s.deltaBias.off + c] : 0;
      for (let t = 0; t < l; t++) {
        const row = bi * l + t;
        const u = U[s.u.off + row * s.u.ld + c];
        let dt = DT[s.delta.off + row * s.delta.ld + c] + bias;
        if (s.deltaSoftplus) dt = softplus(dt);
        const bo = s.B.off + row * s.B.ld,
          co = s.C.off + row * s.C.ld;
        const dtu = dt * u;
        let y = 0;
        for (let j = 0; j < n; j++) {
          const hj = Math.exp(dt * a[j]) * h[j] + dtu * B[bo + j];
          h[j] = hj;
          y += hj * C[co + j];
        }
        y += dv * u;
        if (s.z) y *= silu((s.z.data as Float32Array)[s.z.off + row * s.z.ld + c]);
        Y[s.y.off + row * s.y.ld + c] = y;
      }
      if (s.hOut) {
        const H = s.hOut.data as Float32Array;
        const o = s.hOut.off + hrow * s.hOut.ld;
        for (let j = 0; j < n; j++) H[o + j] = h[j];
      }
    }
  }
}
