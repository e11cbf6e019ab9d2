/**
 * The series the tracer derives from one SSM layer's activations (Mamba-1 and S6: trace.ts's file
 * comment has the formulas): Δ after bias and softplus, the state rerun in f64, |B|, |C| and the
 * memory length. Shared by the taps of every layer kind (taps.ts).
 */
import { softplus } from '../backend/cpu/reference/math.js';

export interface LayerTrace {
  /** The block's index in the model (a hybrid's attention and MLP blocks are not traced). */
  readonly layer: number;
  /** (l, channels) row-major: Δ after bias and softplus (channels: e, or heads for Mamba-2). */
  readonly delta: Float32Array;
  /** (l, channels): tokens remembered with weight ≥ 1/e by each channel's slowest state. */
  readonly memoryLength: Float32Array;
  /** (l): |h_t| over the whole state. */
  readonly stateNorm: Float32Array;
  /** (l) */
  readonly bNorm: Float32Array;
  /** (l) */
  readonly cNorm: Float32Array;
}

/** Mamba-1's / S6's activations as read from the hook (Δ before its bias; A = −exp(A_log)). */
export interface S6Captured {
  u: Float32Array;
  delta: Float32Array;
  B: Float32Array;
  C: Float32Array;
  A: Float32Array;
  bias: Float32Array;
}

/** The derived series of one layer (see the file comment for the formulas). */
export function layerTrace(layer: number, c: S6Captured, l: number, e: number, n: number): LayerTrace {
  const delta = new Float32Array(l * e);
  for (let t = 0; t < l; t++)
    for (let ch = 0; ch < e; ch++) delta[t * e + ch] = softplus(c.delta[t * e + ch] + c.bias[ch]);
  const h = new Float64Array(e * n);
  const stateNorm = new Float32Array(l);
  const bNorm = new Float32Array(l);
  const cNorm = new Float32Array(l);
  for (let t = 0; t < l; t++) {
    let ss = 0;
    for (let ch = 0; ch < e; ch++) {
      const dt = delta[t * e + ch];
      const du = dt * c.u[t * e + ch];
      for (let s = 0; s < n; s++) {
        const i = ch * n + s;
        h[i] = Math.exp(dt * c.A[i]) * h[i] + du * c.B[t * n + s];
        ss += h[i] * h[i];
      }
    }
    stateNorm[t] = Math.sqrt(ss);
    let sb = 0;
    let sc = 0;
    for (let s = 0; s < n; s++) {
      sb += c.B[t * n + s] ** 2;
      sc += c.C[t * n + s] ** 2;
    }
    bNorm[t] = Math.sqrt(sb);
    cNorm[t] = Math.sqrt(sc);
  }
  return { layer, delta, memoryLength: memoryLength(delta, c.A, l, e, n), stateNorm, bNorm, cNorm };
}

/** memory_t,c (file comment), by binary search over the prefix sums of Δ: O(l log l) per channel. */
export function memoryLength(delta: Float32Array, A: Float32Array, l: number, e: number, n: number): Float32Array {
  const out = new Float32Array(l * e);
  const P = new Float64Array(l + 1);
  for (let ch = 0; ch < e; ch++) {
    let a = -Infinity;
    for (let s = 0; s < n; s++) a = Math.max(a, A[ch * n + s]);
    const reach = a < 0 ? 1 / -a : Infinity; // Σ Δ a token can be behind and still weigh 1/e
    for (let t = 0; t < l; t++) P[t + 1] = P[t] + delta[t * e + ch];
    for (let t = 0; t < l; t++) {
      // earliest j with P[t+1] - P[j+1] <= reach, i.e. P[j+1] >= P[t+1] - reach
      const need = P[t + 1] - reach;
      let lo = 0;
      let hi = t;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (P[mid + 1] >= need) hi = mid;
        else lo = mid + 1;
      }
      out[t * e + ch] = t - lo + 1;
    }
  }
  return out;
}
