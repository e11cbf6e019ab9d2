import { sigmoid, silu, softplus } from './math.js';
import type { ScanViews } from './selective-scan.js';
import type { ScanBackwardViews } from './selective-scan-backward.js';
import type { FView } from './view.js';

/**
 * The textbook alternative to selective-scan-backward.ts, kept as a reference for tests and for the
 * memory benchmark (bench/scan-memory.ts): the forward stores every state h_t, (b, l, e, n) f32 —
 * what a naive autograd of the recurrence saves — and the backward reads them instead of recomputing.
 * Not part of the backend contract. Same math as selective-scan-backward.ts.
 */

/** The forward of selective-scan.ts that also writes every state into `states` (b, l, e, n) and y' (b, l, e). */
export function selectiveScanStoring(
  s: ScanViews,
  states: Float32Array,
  yPre: Float32Array,
  b: number,
  l: number,
  e: number,
  n: number,
): void {
  const Y = s.y.data as Float32Array,
    U = s.u.data as Float32Array,
    DT = s.delta.data as Float32Array;
  const A = s.A.data as Float32Array,
    B = s.B.data as Float32Array,
    C = s.C.data as Float32Array;
  const h = new Float64Array(n);
  for (let bi = 0; bi < b; bi++) {
    for (let c = 0; c < e; c++) {
      if (s.h0) {
        const H = s.h0.data as Float32Array;
        const o = s.h0.off + (bi * e + c) * s.h0.ld;
        for (let j = 0; j < n; j++) h[j] = H[o + j];
      } else h.fill(0);
      const dv = s.D ? (s.D.data as Float32Array)[s.D.off + c] : 0;
      const bias = s.deltaBias ? (s.deltaBias.data as Float32Array)[s.deltaBias.off + c] : 0;
      for (let t = 0; t < l; t++) {
        const row = bi * l + t;
        const u = U[s.u.off + row * s.u.ld + c];
        let dt = DT[s.delta.off + row * s.delta.ld + c] + bias;
        if (s.deltaSoftplus) dt = softplus(dt);
        const bo = s.B.off + row * s.B.ld,
          co = s.C.off + row * s.C.ld,
          so = (row * e + c) * n;
        let y = 0;
        for (let j = 0; j < n; j++) {
          const hj = Math.exp(dt * A[s.A.off + c * s.A.ld + j]) * h[j] + dt * u * B[bo + j];
          h[j] = hj;
          states[so + j] = hj;
          y += hj * C[co + j];
        }
        y += dv * u;
        yPre[row * e + c] = y;
        if (s.z) y *= silu((s.z.data as Float32Array)[s.z.off + row * s.z.ld + c]);
        Y[s.y.off + row * s.y.ld + c] = y;
      }
    }
  }
}

/** The backward from stored states (and y' before the gate); outputs as selectiveScanBackward. */
export function selectiveScanBackwardStored(
  s: ScanBackwardViews,
  states: Float32Array,
  yPre: Float32Array,
  b: number,
  l: number,
  e: number,
  n: number,
): void {
  const U = s.u.data as Float32Array,
    DT = s.delta.data as Float32Array,
    A = s.A.data as Float32Array;
  const B = s.B.data as Float32Array,
    C = s.C.data as Float32Array,
    DY = s.dy.data as Float32Array;
  const gh = new Float64Array(n);
  const accB = new Float64Array(b * l * n),
    accC = new Float64Array(b * l * n);
  const accA = new Float64Array(e * n),
    accD = new Float64Array(e),
    accBias = new Float64Array(e);
  const put = (v: FView | null, i: number, x: number): void => {
    if (v) (v.data as Float32Array)[v.off + i] = x;
  };
  for (let bi = 0; bi < b; bi++) {
    for (let c = 0; c < e; c++) {
      const dv = s.D ? (s.D.data as Float32Array)[s.D.off + c] : 0;
      const bias = s.deltaBias ? (s.deltaBias.data as Float32Array)[s.deltaBias.off + c] : 0;
      gh.fill(0);
      for (let t = l - 1; t >= 0; t--) {
        const row = bi * l + t;
        const u = U[s.u.off + row * s.u.ld + c];
        const pre = DT[s.delta.off + row * s.delta.ld + c] + bias;
        const dt = s.deltaSoftplus ? softplus(pre) : pre;
        let gy = DY[s.dy.off + row * s.dy.ld + c];
        if (s.z) {
          const zt = (s.z.data as Float32Array)[s.z.off + row * s.z.ld + c];
          const sg = sigmoid(zt);
          put(s.dz, row * s.dz!.ld + c, gy * yPre[row * e + c] * sg * (1 + zt * (1 - sg)));
          gy *= silu(zt);
        }
        accD[c] += gy * u;
        let du = gy * dv,
          ddt = 0;
        const bo = s.B.off + row * s.B.ld,
          co = s.C.off + row * s.C.ld,
          so = (row * e + c) * n,
          lo = row * n;
        for (let j = 0; j < n; j++) {
          const Aj = A[s.A.off + c * s.A.ld + j],
            Bj = B[bo + j];
          const at = Math.exp(dt * Aj);
          let hp: number;
          if (t > 0) hp = states[so - e * n + j];
          else hp = s.h0 ? (s.h0.data as Float32Array)[s.h0.off + (bi * e + c) * s.h0.ld + j] : 0;
          const g = gh[j] + gy * C[co + j];
          accC[lo + j] += gy * states[so + j];
          ddt += g * (hp * at * Aj + Bj * u);
          accA[c * n + j] += g * hp * at * dt;
          accB[lo + j] += g * dt * u;
          du += g * dt * Bj;
          gh[j] = g * at;
        }
        put(s.du, row * s.du.ld + c, du);
        const dDelta = s.deltaSoftplus ? ddt * (pre > 20 ? 1 : sigmoid(pre)) : ddt;
        put(s.dDelta, row * s.dDelta.ld + c, dDelta);
        accBias[c] += dDelta;
      }
      if (s.dh0) for (let j = 0; j < n; j++) put(s.dh0, (bi * e + c) * s.dh0.ld + j, gh[j]);
    }
  }
  for (let row = 0; row < b * l; row++) {
    for (let j = 0; j < n; j++) {
      put(s.dB, row * s.dB.ld + j, accB[row * n + j]);
      put(s.dC, row * s.dC.ld + j, accC[row * n + j]);
    }
  }
  for (let c = 0; c < e; c++) {
    for (let j = 0; j < n; j++) put(s.dA, c * s.dA.ld + j, accA[c * n + j]);
    put(s.dD, c, accD[c]);
    put(s.dDeltaBias, c, accBias[c]);
  }
}
