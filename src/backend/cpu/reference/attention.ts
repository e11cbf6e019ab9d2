import type { FView } from './view.js';

/**
 * Causal multi-head softmax attention (contract in backend/contract/), one query row at a time so no
 * (l, l) matrix is ever held: for query i of sequence b and head h, at position p = keys − lq + i,
 *   s_j = scale · q_i · k_j  (j <= p),   out_i = sum_j exp(s_j − max s) · v_j / sum_j exp(s_j − max s)
 * in f64. Memory O(keys); time O(b·H·lq·keys·(dk + dv)).
 * q (b, lq, H·dk), k (b, lk, G·dk), v (b, lk, G·dv), out (b, lq, H·dv); rows of k, v past `keys` unused.
 * G key/value heads (grouped-query attention): query head h reads k/v head floor(h / (H/G)).
 * `rowKeys` (per sequence, each in [lq, keys]): sequence bi uses rowKeys[bi] key rows instead of `keys`
 * (a decode batch of sequences at different context lengths), so its query i sits at rowKeys[bi] - lq + i.
 */
export interface AttentionDims {
  b: number;
  lq: number;
  lk: number;
  H: number;
  /** Key/value heads (G = H without grouping). */
  G: number;
  dk: number;
  dv: number;
  keys: number;
  /** Key rows in use per sequence (absent: `keys` for all). */
  rowKeys?: ArrayLike<number>;
}

export function attention(out: FView, q: FView, k: FView, v: FView, d: AttentionDims, scale: number): void {
  const O = out.data as Float32Array,
    Q = q.data as Float32Array,
    K = k.data as Float32Array,
    V = v.data as Float32Array;
  const { b, lq, lk, H, G, dk, dv, keys, rowKeys } = d;
  const perKv = H / G;
  const s = new Float64Array(keys);
  const acc = new Float64Array(dv);
  for (let bi = 0; bi < b; bi++) {
    const used = rowKeys ? rowKeys[bi] : keys;
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / perKv);
      for (let i = 0; i < lq; i++) {
        const pos = used - lq + i;
        const qo = q.off + (bi * lq + i) * q.ld + h * dk;
        let mx = -Infinity;
        for (let j = 0; j <= pos; j++) {
          const ko = k.off + (bi * lk + j) * k.ld + kh * dk;
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
          const vo = v.off + (bi * lk + j) * v.ld + kh * dv;
          for (let c = 0; c < dv; c++) acc[c] += p * V[vo + c];
        }
        const oo = out.off + (bi * lq + i) * out.ld + h * dv;
        for (let c = 0; c < dv; c++) O[oo + c] = acc[c] / sum;
      }
    }
  }
}
