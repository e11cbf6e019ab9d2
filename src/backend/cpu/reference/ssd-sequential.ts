import type { SsdDims } from '../../contract/inference.js';
import { discretiseDt, type SsdViews } from './ssd-scan.js';

/**
 * The SSD recurrence step by step, the definition the chunked scan is proved against in tests
 * (REFERENCE.md §2, transformers' `mamba2_selective_state_update` applied at every position):
 *   h_t = exp(dt_t A) h_{t-1} + dt_t x_t ⊗ B_t ;  y_t = h_t · C_t + D x_t    per batch row and head.
 * Same views and contract as `ssdChunkScan` (chunkSize is ignored). Allocates its state per call.
 */
export function ssdSequentialScan(s: SsdViews, dims: SsdDims): void {
  const { b, l, h, p, g, n } = dims;
  const X = s.x.data as Float32Array,
    Yo = s.y.data as Float32Array,
    DT = s.dt.data as Float32Array;
  const Bd = s.B.data as Float32Array,
    Cd = s.C.data as Float32Array,
    Ad = s.A.data as Float32Array;
  const st = new Float64Array(p * n);
  for (let bi = 0; bi < b; bi++) {
    for (let head = 0; head < h; head++) {
      const gi = Math.floor(head / (h / g));
      for (let pi = 0; pi < p; pi++)
        for (let k = 0; k < n; k++) {
          st[pi * n + k] = s.h0 ? (s.h0.data as Float32Array)[s.h0.off + ((bi * h + head) * p + pi) * s.h0.ld + k] : 0;
        }
      const a = Ad[s.A.off + head];
      const bias = s.dtBias ? (s.dtBias.data as Float32Array)[s.dtBias.off + head] : 0;
      const dv = s.D ? (s.D.data as Float32Array)[s.D.off + head] : 0;
      for (let t = 0; t < l; t++) {
        const row = bi * l + t;
        const dt = discretiseDt(DT[s.dt.off + row * s.dt.ld + head], bias, s.dtSoftplus, s.dtMin, s.dtMax);
        const decay = Math.exp(dt * a);
        const xo = s.x.off + row * s.x.ld + head * p;
        const bo = s.B.off + row * s.B.ld + gi * n;
        const co = s.C.off + row * s.C.ld + gi * n;
        for (let pi = 0; pi < p; pi++) {
          const dx = dt * X[xo + pi];
          let y = 0;
          for (let k = 0; k < n; k++) {
            const v = decay * st[pi * n + k] + dx * Bd[bo + k];
            st[pi * n + k] = v;
            y += v * Cd[co + k];
          }
          Yo[s.y.off + row * s.y.ld + head * p + pi] = y + dv * X[xo + pi];
        }
      }
      if (s.hOut) {
        const H = s.hOut.data as Float32Array;
        for (let pi = 0; pi < p; pi++)
          for (let k = 0; k < n; k++) H[s.hOut.off + ((bi * h + head) * p + pi) * s.hOut.ld + k] = st[pi * n + k];
      }
    }
  }
}
