import type { MoeRouteOptions } from '../../contract/mixers.js';
import type { FView } from './view.js';

/**
 * The router of a sparse mixture of experts as dense weights (contract in contract/mixers.ts), in f64:
 * weights (m, E) <- the chosen experts' weights per row of logits (m, E), zeros elsewhere.
 */
export function moeRoute(w: FView, logits: FView, bias: FView | null, m: number, E: number, o: MoeRouteOptions): void {
  const W = w.data as Float32Array,
    L = logits.data as Float32Array;
  const { topK: k, routing, normTopk, scaling, nGroup, topkGroup } = o;
  const p = new Float64Array(E);
  const choice = new Float64Array(E);
  const chosen = new Int32Array(k);
  for (let r = 0; r < m; r++) {
    const lo = logits.off + r * logits.ld;
    for (let e = 0; e < E; e++) p[e] = L[lo + e];
    if (routing === 'softmax-topk') {
      let mx = -Infinity;
      for (let e = 0; e < E; e++) mx = Math.max(mx, p[e]);
      let z = 0;
      for (let e = 0; e < E; e++) z += p[e] = Math.exp(p[e] - mx);
      for (let e = 0; e < E; e++) p[e] /= z;
    } else if (routing === 'sigmoid') for (let e = 0; e < E; e++) p[e] = 1 / (1 + Math.exp(-p[e]));
    for (let e = 0; e < E; e++) choice[e] = p[e] + (routing === 'sigmoid' && bias ? bias.data[bias.off + e] : 0);
    if (routing === 'sigmoid' && topkGroup < nGroup) maskGroups(choice, E, nGroup, topkGroup);
    // top-k by repeated arg-max, the lower index first on ties
    for (let j = 0; j < k; j++) {
      let best = -1;
      for (let e = 0; e < E; e++) if (choice[e] !== -Infinity && (best < 0 || choice[e] > choice[best])) best = e;
      chosen[j] = best;
      choice[best] = -Infinity;
    }
    const wo = w.off + r * w.ld;
    for (let e = 0; e < E; e++) W[wo + e] = 0;
    if (routing === 'topk-softmax') {
      const mx = p[chosen[0]];
      let z = 0;
      for (let j = 0; j < k; j++) z += Math.exp(p[chosen[j]] - mx);
      for (let j = 0; j < k; j++) W[wo + chosen[j]] = Math.exp(p[chosen[j]] - mx) / z;
    } else {
      let sum = 0;
      for (let j = 0; j < k; j++) sum += p[chosen[j]];
      const denom = normTopk ? sum + (routing === 'sigmoid' ? 1e-20 : 0) : 1;
      for (let j = 0; j < k; j++) W[wo + chosen[j]] = (p[chosen[j]] / denom) * scaling;
    }
  }
}

/** Sets to -inf the experts outside the best `keep` of `groups` groups, each ranked by its two best scores. */
function maskGroups(s: Float64Array, E: number, groups: number, keep: number): void {
  const size = E / groups;
  const rank = new Float64Array(groups);
  for (let g = 0; g < groups; g++) {
    let a = -Infinity,
      b = -Infinity;
    for (let e = g * size; e < (g + 1) * size; e++) {
      if (s[e] > a) {
        b = a;
        a = s[e];
      } else if (s[e] > b) b = s[e];
    }
    rank[g] = size > 1 ? a + b : a;
  }
  for (let j = 0; j < groups - keep; j++) {
    // drop the worst group (the higher index on ties), `groups - keep` times
    let worst = -1;
    for (let g = 0; g < groups; g++) if (rank[g] !== Infinity && (worst < 0 || rank[g] <= rank[worst])) worst = g;
    rank[worst] = Infinity;
    s.fill(-Infinity, worst * size, (worst + 1) * size);
  }
}

/** out (m, d) += weights[:, expert] ⊙ y. */
export function moeAccumulate(out: FView, y: FView, w: FView, m: number, d: number, expert: number): void {
  const O = out.data as Float32Array,
    Y = y.data as Float32Array,
    Wt = w.data as Float32Array;
  for (let r = 0; r < m; r++) {
    const wt = Wt[w.off + r * w.ld + expert];
    if (wt === 0) continue;
    const oo = out.off + r * out.ld,
      yo = y.off + r * y.ld;
    for (let c = 0; c < d; c++) O[oo + c] += wt * Y[yo + c];
  }
}
