import type { SsdDims } from '../../contract/inference.js';
import { softplus } from './math.js';
import { discretiseDt } from './ssd-scan.js';
import type { FView } from './view.js';

/**
 * The gradient of Mamba-2's SSD scan (contract in backend/contract/training.ts), recomputing the states
 * instead of storing them, as `selectiveScanBackward` does for Mamba-1. Per batch row and head (group
 * gi of the head), with the forward in its recurrent form (any chunked form gives the same y):
 *   dt_t = clamp(softplus(raw_t + bias), lo, hi)     a_t = exp(dt_t A)  (a scalar per head and step)
 *   h_t[q,k] = a_t h_{t-1}[q,k] + dt_t x_t[q] B_t[k]
 *   y_t[q]   = sum_k h_t[q,k] C_t[k] + D x_t[q]
 * and gy_t = dL/dy_t, the reverse pass is
 *   gh_t[q,k] = gy_t[q] C_t[k] + a_{t+1} gh_{t+1}[q,k]      (the state's gradient, carried backwards)
 *   dx_t[q]   = gy_t[q] D + dt_t sum_k gh_t[q,k] B_t[k]      dD += sum_q gy_t[q] x_t[q]
 *   dC_t[k]  += sum_q gy_t[q] h_t[q,k]                       dB_t[k] += dt_t sum_q gh_t[q,k] x_t[q]
 *   ddt_t     = a_t A sum_{q,k} gh_t[q,k] h_{t-1}[q,k] + sum_{q,k} gh_t[q,k] x_t[q] B_t[k]
 *   dA       += a_t dt_t sum_{q,k} gh_t[q,k] h_{t-1}[q,k]
 *   dRaw_t    = ddt_t [lo <= dt_t <= hi] softplus'(raw_t + bias);  dBias += dRaw_t;  dh0 = a_0 gh_0
 * dB and dC sum over the heads of a group (one B, C per group); dA, dD, dBias over the batch.
 * The walk needs h_{t-1} backwards in time: pass 1 runs the recurrence forwards keeping h only at chunk
 * starts (l/T states of p·n), pass 2 takes the chunks last to first, recomputes the T states of one
 * chunk from its start and walks it backwards. Scratch per head: p·n·(l/T + T + 2) f64; accumulators
 * are f64 (dB, dC: b·l·g·n). Cost: about three sequential scans.
 */
export interface SsdBackwardViews {
  dy: FView;
  x: FView;
  dt: FView;
  A: FView;
  B: FView;
  C: FView;
  D: FView | null;
  dtBias: FView | null;
  h0: FView | null;
  dtSoftplus: boolean;
  dtMin: number;
  dtMax: number;
  dx: FView;
  dDt: FView;
  dA: FView;
  dB: FView;
  dC: FView;
  dD: FView | null;
  dDtBias: FView | null;
  dh0: FView | null;
}

export function ssdScanBackward(s: SsdBackwardViews, dims: SsdDims, chunk: number): void {
  const { b, l, h, p, g, n } = dims;
  const pn = p * n;
  const hpg = h / g;
  const T = Math.max(1, Math.min(chunk, l));
  const nChunks = Math.max(1, Math.ceil(l / T));
  const X = s.x.data as Float32Array,
    DTr = s.dt.data as Float32Array,
    Bd = s.B.data as Float32Array,
    Cd = s.C.data as Float32Array,
    DY = s.dy.data as Float32Array;
  const DX = s.dx.data as Float32Array,
    DDT = s.dDt.data as Float32Array;
  const starts = new Float64Array(nChunks * pn);
  const hc = new Float64Array((T + 1) * pn); // row 0: the chunk's start state; row i + 1: h after step i
  const ac = new Float64Array(T),
    dtc = new Float64Array(T);
  const st = new Float64Array(pn),
    gh = new Float64Array(pn),
    gy = new Float64Array(p);
  const accB = new Float64Array(b * l * g * n),
    accC = new Float64Array(b * l * g * n);
  const dtAt = (row: number, head: number, bias: number): number =>
    discretiseDt(DTr[s.dt.off + row * s.dt.ld + head], bias, s.dtSoftplus, s.dtMin, s.dtMax);

  for (let head = 0; head < h; head++) {
    const gi = Math.floor(head / hpg);
    const A = (s.A.data as Float32Array)[s.A.off + head];
    const dv = s.D ? (s.D.data as Float32Array)[s.D.off + head] : 0;
    const bias = s.dtBias ? (s.dtBias.data as Float32Array)[s.dtBias.off + head] : 0;
    let dA = 0,
      dD = 0,
      dBias = 0;
    for (let bi = 0; bi < b; bi++) {
      if (s.h0) {
        const H = s.h0.data as Float32Array;
        for (let q = 0; q < p; q++) {
          const o = s.h0.off + ((bi * h + head) * p + q) * s.h0.ld;
          for (let k = 0; k < n; k++) st[q * n + k] = H[o + k];
        }
      } else st.fill(0);
      // Pass 1: the state at the start of every chunk.
      for (let c = 0; c < nChunks; c++) {
        starts.set(st, c * pn);
        if (c === nChunks - 1) break;
        for (let t = c * T, t1 = (c + 1) * T; t < t1; t++) {
          const row = bi * l + t;
          const dt = dtAt(row, head, bias);
          const decay = Math.exp(dt * A);
          const xo = s.x.off + row * s.x.ld + head * p,
            bo = s.B.off + row * s.B.ld + gi * n;
          for (let q = 0; q < p; q++) {
            const dxq = dt * X[xo + q];
            for (let k = 0; k < n; k++) st[q * n + k] = decay * st[q * n + k] + dxq * Bd[bo + k];
          }
        }
      }
      // Pass 2: chunks last to first; gh carries a_{t+1} dL/dh_t across chunk boundaries.
      gh.fill(0);
      for (let c = nChunks - 1; c >= 0; c--) {
        const t0 = c * T,
          t1 = Math.min(l, t0 + T);
        hc.set(starts.subarray(c * pn, (c + 1) * pn), 0);
        for (let t = t0; t < t1; t++) {
          const row = bi * l + t,
            i = t - t0;
          const dt = dtAt(row, head, bias);
          const decay = Math.exp(dt * A);
          dtc[i] = dt;
          ac[i] = decay;
          const xo = s.x.off + row * s.x.ld + head * p,
            bo = s.B.off + row * s.B.ld + gi * n,
            ho = i * pn,
            hn = ho + pn;
          for (let q = 0; q < p; q++) {
            const dxq = dt * X[xo + q];
            for (let k = 0; k < n; k++) hc[hn + q * n + k] = decay * hc[ho + q * n + k] + dxq * Bd[bo + k];
          }
        }
        for (let t = t1 - 1; t >= t0; t--) {
          const row = bi * l + t,
            i = t - t0;
          const dt = dtc[i],
            decay = ac[i];
          const xo = s.x.off + row * s.x.ld + head * p,
            yo = s.dy.off + row * s.dy.ld + head * p,
            bo = s.B.off + row * s.B.ld + gi * n,
            co = s.C.off + row * s.C.ld + gi * n,
            lo = (row * g + gi) * n,
            ho = i * pn,
            hn = ho + pn;
          for (let q = 0; q < p; q++) gy[q] = DY[yo + q];
          let sumGhH = 0,
            sumGhXB = 0;
          for (let q = 0; q < p; q++) {
            const xq = X[xo + q],
              gq = gy[q];
            dD += gq * xq;
            let dxq = 0;
            for (let k = 0; k < n; k++) {
              const Bk = Bd[bo + k];
              const gk = gh[q * n + k] + gq * Cd[co + k]; // dL/dh_t[q,k]
              accC[lo + k] += gq * hc[hn + q * n + k];
              sumGhH += gk * hc[ho + q * n + k];
              const gB = gk * Bk;
              sumGhXB += gB * xq;
              dxq += gB;
              accB[lo + k] += gk * dt * xq;
              gh[q * n + k] = gk * decay;
            }
            DX[s.dx.off + row * s.dx.ld + head * p + q] = gq * dv + dt * dxq;
          }
          dA += decay * dt * sumGhH;
          const ddt = decay * A * sumGhH + sumGhXB;
          const v = DTr[s.dt.off + row * s.dt.ld + head] + bias;
          const sp = s.dtSoftplus ? softplus(v) : v; // dt before the clamp
          const inRange = sp >= s.dtMin && sp <= s.dtMax ? 1 : 0;
          const dRaw = s.dtSoftplus ? ddt * inRange * (v > 20 ? 1 : 1 / (1 + Math.exp(-v))) : ddt * inRange;
          DDT[s.dDt.off + row * s.dDt.ld + head] = dRaw;
          dBias += dRaw;
        }
      }
      if (s.dh0) {
        const H = s.dh0.data as Float32Array;
        for (let q = 0; q < p; q++) {
          const o = s.dh0.off + ((bi * h + head) * p + q) * s.dh0.ld;
          for (let k = 0; k < n; k++) H[o + k] = gh[q * n + k];
        }
      }
    }
    (s.dA.data as Float32Array)[s.dA.off + head] = dA;
    if (s.dD) (s.dD.data as Float32Array)[s.dD.off + head] = dD;
    if (s.dDtBias) (s.dDtBias.data as Float32Array)[s.dDtBias.off + head] = dBias;
  }
  const DB = s.dB.data as Float32Array,
    DC = s.dC.data as Float32Array;
  const gn = g * n;
  for (let row = 0; row < b * l; row++) {
    for (let j = 0; j < gn; j++) {
      DB[s.dB.off + row * s.dB.ld + j] = accB[row * gn + j];
      DC[s.dC.off + row * s.dC.ld + j] = accC[row * gn + j];
    }
  }
}
