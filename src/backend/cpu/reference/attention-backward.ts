import type { FView } from './view.js';

/**
 * Gradient of causal attention with keys = lk = lq = l (contract in backend/contract/), recomputing each
 * query row's probabilities P_i· (as the forward does) instead of storing the (l, l) matrix:
 *   dP_ij = g_i · v_j,   dS_ij = P_ij (dP_ij − sum_j' P_ij' dP_ij')          (softmax's Jacobian)
 *   dq_i = scale · sum_j dS_ij k_j,   dk_j += scale · dS_ij q_i,   dv_j += P_ij g_i
 * per sequence and head, accumulated in f64. dq, q, dk, k (b, l, H·dk); dv, v, g (b, l, H·dv).
 */
export function attentionBackward(
  dq: FView,
  dk: FView,
  dv: FView,
  g: FView,
  q: FView,
  k: FView,
  v: FView,
  b: number,
  l: number,
  H: number,
  dkw: number,
  dvw: number,
  scale: number,
): void {
  const Q = q.data as Float32Array,
    K = k.data as Float32Array,
    V = v.data as Float32Array,
    G = g.data as Float32Array;
  const DQ = dq.data as Float32Array,
    DK = dk.data as Float32Array,
    DV = dv.data as Float32Array;
  const p = new Float64Array(l),
    dp = new Float64Array(l);
  const accK = new Float64Array(l * dkw),
    accV = new Float64Array(l * dvw),
    accQ = new Float64Array(dkw);
  for (let bi = 0; bi < b; bi++) {
    for (let h = 0; h < H; h++) {
      accK.fill(0);
      accV.fill(0);
      for (let i = 0; i < l; i++) {
        const qo = q.off + (bi * l + i) * q.ld + h * dkw;
        const go = g.off + (bi * l + i) * g.ld + h * dvw;
        let mx = -Infinity;
        for (let j = 0; j <= i; j++) {
          const ko = k.off + (bi * l + j) * k.ld + h * dkw;
          let dot = 0;
          for (let c = 0; c < dkw; c++) dot += Q[qo + c] * K[ko + c];
          p[j] = scale * dot;
          if (p[j] > mx) mx = p[j];
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) {
          p[j] = Math.exp(p[j] - mx);
          sum += p[j];
        }
        let dsum = 0;
        for (let j = 0; j <= i; j++) {
          p[j] = p[j] / sum;
          const vo = v.off + (bi * l + j) * v.ld + h * dvw;
          let dot = 0;
          for (let c = 0; c < dvw; c++) dot += G[go + c] * V[vo + c];
          dp[j] = dot;
          dsum += p[j] * dot;
        }
        accQ.fill(0);
        for (let j = 0; j <= i; j++) {
          const ds = scale * p[j] * (dp[j] - dsum);
          const ko = k.off + (bi * l + j) * k.ld + h * dkw;
          for (let c = 0; c < dkw; c++) {
            accQ[c] += ds * K[ko + c];
            accK[j * dkw + c] += ds * Q[qo + c];
          }
          const pj = p[j];
          for (let c = 0; c < dvw; c++) accV[j * dvw + c] += pj * G[go + c];
        }
        const dqo = dq.off + (bi * l + i) * dq.ld + h * dkw;
        for (let c = 0; c < dkw; c++) DQ[dqo + c] = accQ[c];
      }
      for (let j = 0; j < l; j++) {
        const dko = dk.off + (bi * l + j) * dk.ld + h * dkw,
          dvo = dv.off + (bi * l + j) * dv.ld + h * dvw;
        for (let c = 0; c < dkw; c++) DK[dko + c] = accK[j * dkw + c];
        for (let c = 0; c < dvw; c++) DV[dvo + c] = accV[j * dvw + c];
      }
    }
  }
}
