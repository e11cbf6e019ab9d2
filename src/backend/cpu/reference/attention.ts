import type { FView } from './view.js';

/**
 * Causal multi-head softmax attention (contract in backend/contract/), one query row at a time so no
 * (l, l) matrix is ever held: for query i of sequence b and head h, at position p = keys − lq + i,
 *   s_j = scale · q_i · k_j  (j <= p),   out_i = sum_j exp(s_j − max s) · v_j / sum_j exp(s_j − max s)
 * in f64. Memory O(keys); time O(b·H·lq·keys·(dk + dv)).
 * q (b, lq, H·dk), k (b, lk, H·dk), v (b, lk, H·dv), out (b, lq, H·dv); rows of k, v past `keys` unused.
 */
export interface AttentionDims {
  b: number;
  lq: number;
  lk: number;
  H: number;
  dk: number;
  dv: number;
  keys: number;
}

export function attention(out: FView, q: FView, k: FView, v: FView, d: AttentionDims, scale: number): void {
  const O = out.data as Float32Array,
    Q = q.data as Float32Array,
    K = k.data as Float32Array,
    V = v.data as Float32Array;
  const { b, lq, lk, H, dk, dv, keys } = d;
  const s = new Float64Array(keys);
  const acc = new Float64Array(dv);
  for (let bi = 0; bi < b; bi++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < lq; i++) {
        const pos = keys - lq + i;
        const qo = q.off + (bi * lq + i) * q.ld + h * dk;
        let mx = -Infinity;
        for (let j = 0; j <= pos; j++) {
          const ko = k.off + (bi * lk + j) * k.ld + h * dk;
          let dot = 0;
          for (let c = 0; c < dk; c++) dot += Q[qo + c] * K[ko + c];
          const sj = scale * dot;
          s[j] = sj;
          if (sj > mx) mx = sj;
        }
        let sum = 0;
        acc.fill(0);
        for (let j = 0; j <= pos; j++) {
          const p = Math.exp(s[j] - mx);
          sum += p;
          const vo = v.off + (bi * lk + j) * v.ld + h * dv;
          for (let c = 0; c < dv; c++) acc[c] += p * V[vo + c];
        }
        const oo = out.off + (bi * lq + i) * out.ld + h * dv;
        for (let c = 0; c < dv; c++) O[oo + c] = acc[c] / sum;
      }
    }
  }
}
