import { uniform } from '../tensor/rng.js';
import type { SamplingParams } from './sampling-params.js';

/**
 * The sampling semantics of backend/sampling.ts written out step by step, one pass per step over the
 * vocabulary (about nine, a full sort for top-p): the specification that `Sampler`'s fused passes
 * must match bit for bit (test/server/sampling-fused.test.ts compares them on random logits), and
 * its answer where the fused passes do not apply (a NaN or +Infinity logit, or one overflowing x / T).
 */
export class ReferenceSampler {
  private x = new Float64Array(0);
  private order = new Int32Array(0);
  private keep = new Uint8Array(0);

  /**
   * Picks one token from `logits[off .. off + V)`. `seen` lists token ids already in this sequence
   * (for the repetition penalty; duplicates are fine). `row` and `step` key the random draw.
   */
  sample(
    logits: ArrayLike<number>,
    off: number,
    V: number,
    p: SamplingParams,
    seen: Iterable<number> | null,
    row: number,
    step: number,
  ): number {
    if (this.x.length < V) {
      this.x = new Float64Array(V);
      this.order = new Int32Array(V);
      this.keep = new Uint8Array(V);
    }
    const x = this.x;
    for (let i = 0; i < V; i++) x[i] = logits[off + i];
    if (p.repetitionPenalty !== 1 && seen) {
      const done = new Set<number>();
      for (const id of seen) {
        if (id < 0 || id >= V || done.has(id)) continue;
        done.add(id);
        x[id] = x[id] < 0 ? x[id] * p.repetitionPenalty : x[id] / p.repetitionPenalty;
      }
    }
    if (p.temperature === 0) {
      let best = 0;
      for (let i = 1; i < V; i++) if (x[i] > x[best]) best = i;
      return best;
    }
    const keep = this.keep;
    keep.fill(1, 0, V);
    for (let i = 0; i < V; i++) x[i] = x[i] / p.temperature;
    if (p.topK > 0 && p.topK < V) {
      const kth = kthLargest(x, V, p.topK);
      for (let i = 0; i < V; i++) if (x[i] < kth) keep[i] = 0;
    }
    // softmax over kept tokens (x becomes probabilities; dropped tokens 0)
    let mx = -Infinity;
    for (let i = 0; i < V; i++) if (keep[i] && x[i] > mx) mx = x[i];
    let sum = 0;
    for (let i = 0; i < V; i++) {
      const e = keep[i] ? Math.exp(x[i] - mx) : 0;
      x[i] = e;
      sum += e;
    }
    for (let i = 0; i < V; i++) x[i] = x[i] / sum;
    if (p.topP < 1) {
      const ord = this.order;
      let n = 0;
      for (let i = 0; i < V; i++) if (keep[i]) ord[n++] = i;
      const sorted = Array.from(ord.subarray(0, n)).sort((a, b) => x[b] - x[a] || a - b);
      let before = 0;
      for (const i of sorted) {
        if (before >= p.topP) keep[i] = 0;
        before += x[i];
      }
    }
    if (p.minP > 0) {
      let pmax = 0;
      for (let i = 0; i < V; i++) if (keep[i] && x[i] > pmax) pmax = x[i];
      const floor = p.minP * pmax;
      for (let i = 0; i < V; i++) if (keep[i] && x[i] < floor) keep[i] = 0;
    }
    let mass = 0;
    for (let i = 0; i < V; i++) if (keep[i]) mass += x[i];
    const target = uniform(p.seed, row, step) * mass;
    let cum = 0,
      last = -1;
    for (let i = 0; i < V; i++) {
      if (!keep[i]) continue;
      cum += x[i];
      last = i;
      if (cum > target) return i;
    }
    return last;
  }
}

/** The k-th largest of x[0..V) (1-based k), by quickselect on a copy (in `scratch` when it is long enough). */
export function kthLargest(x: Float64Array, V: number, k: number, scratch?: Float64Array): number {
  const a = scratch && scratch.length >= V ? scratch : new Float64Array(V);
  a.set(x.subarray(0, V));
  let lo = 0,
    hi = V - 1;
  const want = k - 1; // index in descending order
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo,
      j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return a[want];
  }
  return a[want];
}
