import { softplus } from './math.js';
import type { FView } from './view.js';

/**
 * The gradient of the selective scan (contract in backend/contract/), recomputing the states instead of
 * storing them (Gu & Dao 2023, §3.3.2 "recomputation"). Per (batch, channel), with the forward
 *   dt_t = softplus(delta_t + bias)      a_tj = exp(dt_t A_j)
 *   h_tj = a_tj h_{t-1,j} + dt_t B_tj u_t
 *   y'_t = sum_j h_tj C_tj + D u_t       y_t = y'_t silu(z_t)
 * and gy_t = dL/dy_t, the reverse pass is
 *   gz_t  = gy_t y'_t silu'(z_t);   g'_t = gy_t silu(z_t)
 *   dD   += g'_t u_t;   du_t = g'_t D + sum_j gh_tj dt_t B_tj;   dC_tj = g'_t h_tj
 *   gh_tj = g'_t C_tj + a_{t+1,j} gh_{t+1,j}          (the state's gradient, carried backwards)
 *   ddt_t = sum_j gh_tj (h_{t-1,j} a_tj A_j + B_tj u_t)
 *   dA_j += gh_tj h_{t-1,j} a_tj dt_t;   dB_tj = gh_tj dt_t u_t
 *   dDelta_t = ddt_t softplus'(delta_t + bias);  dBias += dDelta_t;  dh0_j = a_0j gh_0j
 * The reverse pass needs h_{t-1} backwards in time. Pass 1 runs the recurrence forwards and keeps
 * h only at chunk starts (l/T states); pass 2 takes the chunks last to first, recomputes the T
 * states and decays of one chunk from its start state, and walks it backwards. Per (batch, channel)
 * that is n (l/T + 2T) f64 of scratch; dB and dC sum over channels and dA, dD, dBias over the batch,
 * in f64 accumulators. Cost: about three forward scans. Channels run in the outer loop so dA, dD and
 * dBias of a channel accumulate in registers / an n-vector over the whole batch.
 */
export interface ScanBackwardViews {
  dy: FView;
  u: FView;
  delta: FView;
  A: FView;
  B: FView;
  C: FView;
  D: FView | null;
  z: FView | null;
  deltaBias: FView | null;
  h0: FView | null;
  deltaSoftplus: boolean;
  du: FView;
  dDelta: FView;
  dA: FView;
  dB: FView;
  dC: FView;
  dD: FView | null;
  dz: FView | null;
  dDeltaBias: FView | null;
  dh0: FView | null;
}

export function selectiveScanBackward(
  s: ScanBackwardViews,
  b: number,
  l: number,
  e: number,
  n: number,
  chunk: number,
): void {
  const U = s.u.data as Float32Array,
    DT = s.delta.data as Float32Array,
    A = s.A.data as Float32Array;
  const B = s.B.data as Float32Array,
    C = s.C.data as Float32Array,
    DY = s.dy.data as Float32Array;
  const Z = s.z ? (s.z.data as Float32Array) : null;
  const T = Math.max(1, Math.min(chunk, l));
  const nChunks = Math.ceil(l / T);
  const starts = new Float64Array(nChunks * n);
  const hc = new Float64Array((T + 1) * n); // row 0: the chunk's start state; row i + 1: h at step i
  const ac = new Float64Array(T * n);
  const dtc = new Float64Array(T),
    uc = new Float64Array(T),
    yc = new Float64Array(T);
  const h = new Float64Array(n),
    gh = new Float64Array(n),
    a = new Float64Array(n),
    dAc = new Float64Array(n);
  const accB = new Float64Array(b * l * n),
    accC = new Float64Array(b * l * n);
  const DU = s.du.data as Float32Array,
    DDT = s.dDelta.data as Float32Array;
  const uOff = s.u.off,
    uLd = s.u.ld,
    dOff = s.delta.off,
    dLd = s.delta.ld,
    bOff = s.B.off,
    bLd = s.B.ld,
    cOff = s.C.off,
    cLd = s.C.ld;
  const soft = s.deltaSoftplus;
  for (let c = 0; c < e; c++) {
    for (let j = 0; j < n; j++) a[j] = A[s.A.off + c * s.A.ld + j];
    const dv = s.D ? (s.D.data as Float32Array)[s.D.off + c] : 0;
    const bias = s.deltaBias ? (s.deltaBias.data as Float32Array)[s.deltaBias.off + c] : 0;
    dAc.fill(0);
    let dD = 0,
      dBias = 0;
    for (let bi = 0; bi < b; bi++) {
      if (s.h0) {
        const H = s.h0.data as Float32Array;
        const o = s.h0.off + (bi * e + c) * s.h0.ld;
        for (let j = 0; j < n; j++) h[j] = H[o + j];
      } else h.fill(0);
      // Pass 1: h at the start of every chunk.
      for (let k = 0; k < nChunks; k++) {
        starts.set(h, k * n);
        if (k === nChunks - 1) break;
        for (let t = k * T, t1 = (k + 1) * T; t < t1; t++) {
          const row = bi * l + t;
          const x = DT[dOff + row * dLd + c] + bias;
          const dt = soft ? softplus(x) : x;
          const dtu = dt * U[uOff + row * uLd + c];
          const bo = bOff + row * bLd;
          for (let j = 0; j < n; j++) h[j] = Math.exp(dt * a[j]) * h[j] + dtu * B[bo + j];
        }
      }
      // Pass 2: chunks last to first; gh carries dL/dh_t (times a_{t+1}) across chunk boundaries.
      gh.fill(0);
      for (let k = nChunks - 1; k >= 0; k--) {
        const t0 = k * T,
          t1 = Math.min(l, t0 + T);
        // Recompute the chunk: states h_t, decays a_t, dt_t, u_t and y'_t (before the gate).
        for (let j = 0; j < n; j++) hc[j] = starts[k * n + j];
        for (let t = t0; t < t1; t++) {
          const row = bi * l + t,
            i = t - t0;
          const x = DT[dOff + row * dLd + c] + bias;
          const dt = soft ? softplus(x) : x;
          const u = U[uOff + row * uLd + c];
          dtc[i] = dt;
          uc[i] = u;
          const bo = bOff + row * bLd,
            co = cOff + row * cLd,
            ho = i * n,
            hn = ho + n;
          const dtu = dt * u;
          let y = 0;
          for (let j = 0; j < n; j++) {
            const at = Math.exp(dt * a[j]);
            const hj = at * hc[ho + j] + dtu * B[bo + j];
            ac[ho + j] = at;
            hc[hn + j] = hj;
            y += hj * C[co + j];
          }
          yc[i] = y + dv * u;
        }
        // Walk it backwards (the formulas above).
        for (let t = t1 - 1; t >= t0; t--) {
          const row = bi * l + t,
            i = t - t0;
          const u = uc[i],
            dt = dtc[i];
          let gy = DY[s.dy.off + row * s.dy.ld + c];
          if (Z) {
            const zt = Z[s.z!.off + row * s.z!.ld + c];
            const sg = 1 / (1 + Math.exp(-zt));
            (s.dz!.data as Float32Array)[s.dz!.off + row * s.dz!.ld + c] = gy * yc[i] * sg * (1 + zt * (1 - sg));
            gy *= zt * sg; // silu(z)
          }
          dD += gy * u;
          let du = gy * dv,
            ddt = 0;
          const bo = bOff + row * bLd,
            co = cOff + row * cLd,
            lo = row * n,
            ho = i * n,
            hn = ho + n;
          const dtu = dt * u;
          for (let j = 0; j < n; j++) {
            const Bj = B[bo + j],
              at = ac[ho + j],
              hp = hc[ho + j];
            const g = gh[j] + gy * C[co + j];
            accC[lo + j] += gy * hc[hn + j];
            const gha = g * hp * at;
            ddt += gha * a[j] + g * Bj * u;
            dAc[j] += gha * dt;
            accB[lo + j] += g * dtu;
            du += g * dt * Bj;
            gh[j] = g * at;
          }
          DU[s.du.off + row * s.du.ld + c] = du;
          const x = DT[dOff + row * dLd + c] + bias;
          const dDelta = soft ? ddt * (x > 20 ? 1 : 1 / (1 + Math.exp(-x))) : ddt;
          DDT[s.dDelta.off + row * s.dDelta.ld + c] = dDelta;
          dBias += dDelta;
        }
      }
      if (s.dh0) {
        const H = s.dh0.data as Float32Array;
        const o = s.dh0.off + (bi * e + c) * s.dh0.ld;
        for (let j = 0; j < n; j++) H[o + j] = gh[j];
      }
    }
    for (let j = 0; j < n; j++) (s.dA.data as Float32Array)[s.dA.off + c * s.dA.ld + j] = dAc[j];
    if (s.dD) (s.dD.data as Float32Array)[s.dD.off + c] = dD;
    if (s.dDeltaBias) (s.dDeltaBias.data as Float32Array)[s.dDeltaBias.off + c] = dBias;
  }
  const DB = s.dB.data as Float32Array,
    DC = s.dC.data as Float32Array;
  for (let row = 0; row < b * l; row++) {
    for (let j = 0; j < n; j++) {
      DB[s.dB.off + row * s.dB.ld + j] = accB[row * n + j];
      DC[s.dC.off + row * s.dC.ld + j] = accC[row * n + j];
    }
  }
}
