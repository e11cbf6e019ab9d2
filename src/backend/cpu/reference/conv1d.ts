import { silu } from './math.js';
import type { FView } from './view.js';

/**
 * Causal depthwise conv1d with optional SiLU and a carried state (contract in backend/contract/):
 *   out[b,t,c] = act(bias[c] + sum_{j<k} weight[c,j] * xin[b, t-k+1+j, c])
 * where xin before t = 0 comes from the state's last k-1 columns (zeros without a state), and the
 * state becomes the last k inputs, oldest first: state[b,c,j] = xin[b, l-k+j, c].
 * x, out (b, l, e); weight (e, k); bias (e); state (b, e, k).
 */
export function causalConv1d(
  out: FView,
  x: FView,
  weight: FView,
  bias: FView | null,
  state: FView | null,
  b: number,
  l: number,
  e: number,
  k: number,
  act: boolean,
): void {
  const O = out.data as Float32Array;
  const X = x.data as Float32Array;
  const W = weight.data as Float32Array;
  const S = state ? (state.data as Float32Array) : null;
  const win = new Float64Array(k); // sliding window of inputs for one channel
  for (let bi = 0; bi < b; bi++) {
    for (let c = 0; c < e; c++) {
      const so = state ? state.off + (bi * e + c) * state.ld : 0; // state rows are (b*e) of width k
      for (let j = 0; j < k; j++) win[j] = S ? S[so + j] : 0;
      const wo = weight.off + c * weight.ld;
      const bv = bias ? (bias.data as Float32Array)[bias.off + c] : 0;
      for (let t = 0; t < l; t++) {
        for (let j = 0; j < k - 1; j++) win[j] = win[j + 1];
        win[k - 1] = X[x.off + (bi * l + t) * x.ld + c];
        let s = bv;
        for (let j = 0; j < k; j++) s += W[wo + j] * win[j];
        O[out.off + (bi * l + t) * out.ld + c] = act ? silu(s) : s;
      }
      if (S) for (let j = 0; j < k; j++) S[so + j] = win[j];
    }
  }
}
