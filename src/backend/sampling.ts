import { uniform } from '../tensor/rng.js';
import { kthLargest, ReferenceSampler } from './sampling-reference.js';
import type { SamplingParams } from './sampling-params.js';

export { checkSamplingParams, GREEDY, type SamplingParams } from './sampling-params.js';

/**
 * Choosing the next token from a row of logits: the reference semantics that every backend's sampler
 * (the CPU one here, the WebGPU kernel) implements exactly. Order as in transformers' warpers:
 *   1. repetition penalty (CTRL): for every token already in the sequence, x < 0 ? x * p : x / p
 *   2. greedy (temperature 0): the first index of the maximum
 *   3. temperature: x / T
 *   4. top-k: keep x >= the k-th largest value (ties at the boundary kept)
 *   5. softmax over the kept tokens
 *   6. top-p: rank kept tokens by probability (ties: lower index first); keep a token while the mass
 *      ranked before it is < top_p (so at least one token stays)
 *   7. min-p: keep p >= min_p * max p (over the tokens still kept)
 *   8. draw: u = uniform(seed, row, step); renormalise the kept mass; walk kept tokens in index order
 *      and take the first whose cumulative probability exceeds u (the last kept token if rounding
 *      leaves none).
 * backend/sampling-reference.ts does this one step per pass; `Sampler` below gives the same token
 * (bit for bit: the same float operations in the same order) in fewer passes, as a server samples
 * every row of every step and the vocabulary passes add up:
 *   greedy: one argmax pass over the logits themselves (no copy);
 *   else: (a) x / T into a scratch row and its maximum; (b) exp(x - max) and their sum (top-k: tokens
 *   below the k-th largest get 0); (c) x / sum, the kept mass and, for top-p, the mass above a few
 *   thresholds; then the walk, which stops at the token drawn.
 *   top-p sorts only the tokens above the highest threshold holding at least top_p of the mass (in
 *   the reference's order: probability, then index); when the mass accumulated over them in that order
 *   reaches top_p, every token below is dropped exactly as the full sort would drop it, else the full
 *   sort runs. min-p's max p is the largest kept probability, found in pass (c).
 * Logits that are NaN, +Infinity or overflow x / T (so the maximum is not finite) go to the reference.
 */

/** Scratch arrays reused across calls (sampling allocates nothing per token once warmed up). */
export class Sampler {
  private x = new Float64Array(0);
  private copy = new Float64Array(0);
  private order = new Int32Array(0);
  private spare = new Int32Array(0);
  private keep = new Uint8Array(0);
  private marked = new Uint8Array(0);
  private ids = new Int32Array(0);
  private reference: ReferenceSampler | null = null;
  /** Set by `fused` when a NaN logit sent it back. */
  private sawNaN = false;

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
    const t = this.fused(logits, off, V, p, seen, row, step);
    if (t >= 0) return t;
    return (this.reference ??= new ReferenceSampler()).sample(logits, off, V, p, seen, row, step);
  }

  /** As `sample`, but -1 when a logit is NaN (a broken model: the caller reports it). */
  sampleFinite(
    logits: ArrayLike<number>,
    off: number,
    V: number,
    p: SamplingParams,
    seen: Iterable<number> | null,
    row: number,
    step: number,
  ): number {
    const t = this.fused(logits, off, V, p, seen, row, step);
    if (t >= 0) return t;
    if (this.sawNaN) return -1;
    return (this.reference ??= new ReferenceSampler()).sample(logits, off, V, p, seen, row, step);
  }

  private grow(V: number): void {
    if (this.x.length >= V) return;
    this.x = new Float64Array(V);
    this.copy = new Float64Array(V);
    this.order = new Int32Array(V);
    this.keep = new Uint8Array(V);
    this.marked = new Uint8Array(V);
    this.ids = new Int32Array(V);
  }

  /** The token, or -1 where the reference must answer (this.sawNaN says whether a logit was NaN). */
  private fused(
    logits: ArrayLike<number>,
    off: number,
    V: number,
    p: SamplingParams,
    seen: Iterable<number> | null,
    row: number,
    step: number,
  ): number {
    this.grow(V);
    this.sawNaN = false;
    const x = this.x;
    const penalty = p.repetitionPenalty !== 1 && seen !== null;
    if (p.temperature === 0) {
      if (!penalty) return this.argmax(logits, off, V);
      for (let i = 0; i < V; i++) x[i] = logits[off + i];
      this.penalise(x, V, p.repetitionPenalty, seen);
      return this.argmax(x, 0, V);
    }
    // (a) x / T and its maximum
    const T = p.temperature;
    let mx = -Infinity,
      nan = false;
    if (T === 1) {
      // (x / 1 is x: OpenAI's default temperature skips V divisions)
      for (let i = 0; i < V; i++) {
        const v = logits[off + i];
        x[i] = v;
        if (v > mx) mx = v;
        else if (Number.isNaN(v)) nan = true;
      }
    } else {
      for (let i = 0; i < V; i++) {
        const v = logits[off + i] / T;
        x[i] = v;
        if (v > mx) mx = v;
        else if (Number.isNaN(v)) nan = true;
      }
    }
    if (penalty) {
      // the reference divides the penalised logit by T: the same two roundings here
      const pen = p.repetitionPenalty,
        n = this.distinct(seen, V),
        ids = this.ids;
      for (let j = 0; j < n; j++) {
        const raw = logits[off + ids[j]];
        x[ids[j]] = (raw < 0 ? raw * pen : raw / pen) / T;
      }
      mx = -Infinity;
      for (let i = 0; i < V; i++) if (x[i] > mx) mx = x[i];
    }
    if (nan || !(mx < Infinity) || mx === -Infinity) {
      this.sawNaN = nan;
      return -1;
    }
    const topK = p.topK > 0 && p.topK < V;
    if (!topK && p.topP === 1 && p.minP === 0) return this.plain(x, mx, V, uniform(p.seed, row, step));
    // (b) exp(x - max) over the kept tokens and their sum; the maximum is always kept
    const keep = this.keep;
    let sum = 0;
    if (topK) {
      const kth = kthLargest(x, V, p.topK, this.copy);
      for (let i = 0; i < V; i++) {
        const k = x[i] >= kth;
        const e = k ? Math.exp(x[i] - mx) : 0;
        keep[i] = k ? 1 : 0;
        x[i] = e;
        sum += e;
      }
    } else {
      keep.fill(1, 0, V);
      for (let i = 0; i < V; i++) {
        const e = Math.exp(x[i] - mx);
        x[i] = e;
        sum += e;
      }
    }
    // (c) probabilities, the largest kept one, and for top-p the kept mass at or above pmax / 16^j
    let pmax = 0;
    for (let i = 0; i < V; i++) {
      const q = x[i] / sum;
      x[i] = q;
      if (keep[i] && q > pmax) pmax = q;
    }
    if (p.topP < 1) this.topP(x, keep, V, p.topP, pmax);
    let floor = 0;
    if (p.minP > 0) {
      // (top-p keeps the most likely token: pmax is still the largest kept probability)
      floor = p.minP * pmax;
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

  /** The first index of the maximum; -1 (sawNaN) where a value is NaN. */
  private argmax(x: ArrayLike<number>, off: number, V: number): number {
    let best = 0,
      bv = x[off];
    if (Number.isNaN(bv)) {
      this.sawNaN = true;
      return -1;
    }
    for (let i = 1; i < V; i++) {
      const v = x[off + i];
      if (v > bv) {
        bv = v;
        best = i;
      } else if (Number.isNaN(v)) {
        this.sawNaN = true;
        return -1;
      }
    }
    return best;
  }

  /** The repetition penalty on each distinct seen id (in place on x, before temperature). */
  private penalise(x: Float64Array, V: number, pen: number, seen: Iterable<number>): void {
    const n = this.distinct(seen, V),
      ids = this.ids;
    for (let j = 0; j < n; j++) x[ids[j]] = x[ids[j]] < 0 ? x[ids[j]] * pen : x[ids[j]] / pen;
  }

  /** Puts the distinct ids in [0, V) of `seen` in this.ids (in order of first appearance); their count. */
  private distinct(seen: Iterable<number>, V: number): number {
    const marked = this.marked,
      ids = this.ids;
    let n = 0;
    for (const id of seen) {
      if (id < 0 || id >= V || marked[id]) continue;
      marked[id] = 1;
      ids[n++] = id;
    }
    for (let j = 0; j < n; j++) marked[ids[j]] = 0;
    return n;
  }

  /** No truncation: softmax of x (max mx) and the walk to the drawn token; every token is kept. */
  private plain(x: Float64Array, mx: number, V: number, u: number): number {
    let sum = 0;
    for (let i = 0; i < V; i++) {
      const e = Math.exp(x[i] - mx);
      x[i] = e;
      sum += e;
    }
    let mass = 0;
    for (let i = 0; i < V; i++) {
      const q = x[i] / sum;
      x[i] = q;
      mass += q;
    }
    const target = u * mass;
    let cum = 0;
    for (let i = 0; i < V; i++) {
      cum += x[i];
      if (cum > target) return i;
    }
    return V - 1;
  }

  /**
   * Top-p over the probabilities x of the kept tokens: drops (keep = 0) what the reference's full sort
   * drops, sorting only the tokens at or above a threshold when they hold top_p of the mass.
   */
  private topP(x: Float64Array, keep: Uint8Array, V: number, topP: number, pmax: number): void {
    const ord = this.order;
    // kept mass at or above pmax / 16, / 256, / 4096, / 65536 (any order: this only picks a threshold)
    const t1 = pmax / 16,
      t2 = pmax / 256,
      t3 = pmax / 4096,
      t4 = pmax / 65536;
    let m1 = 0,
      m2 = 0,
      m3 = 0,
      m4 = 0;
    for (let i = 0; i < V; i++) {
      if (!keep[i]) continue;
      const q = x[i];
      if (q >= t4) {
        m4 += q;
        if (q >= t3) {
          m3 += q;
          if (q >= t2) {
            m2 += q;
            if (q >= t1) m1 += q;
          }
        }
      }
    }
    for (let j = 1; j <= 5; j++) {
      // the thresholds from the highest; the last (0) takes every kept token: the full sort
      const t = j === 1 ? t1 : j === 2 ? t2 : j === 3 ? t3 : j === 4 ? t4 : 0;
      const m = j === 1 ? m1 : j === 2 ? m2 : j === 3 ? m3 : j === 4 ? m4 : Infinity;
      if (m < topP) continue;
      let n = 0;
      for (let i = 0; i < V; i++) if (keep[i] && x[i] >= t) ord[n++] = i;
      const sorted = this.rank(x, n);
      let before = 0;
      for (let r = 0; r < n; r++) before += x[sorted[r]];
      // below t, every token comes after these in the ranking, with at least `before` ranked before it
      if (!(before >= topP) && t > 0) continue;
      before = 0;
      for (let r = 0; r < n; r++) {
        const i = sorted[r];
        if (before >= topP) keep[i] = 0;
        before += x[i];
      }
      if (t > 0) for (let i = 0; i < V; i++) if (keep[i] && x[i] < t) keep[i] = 0;
      return;
    }
  }

  /**
   * The n ids in this.order (ascending) ranked as the reference ranks them: probability descending,
   * ties by lower id. A stable merge sort on x descending (ids start ascending, so ties keep id order):
   * the same order as the reference's comparator sort, a strict total order, without its calls.
   */
  private rank(x: Float64Array, n: number): Int32Array {
    if (this.spare.length < this.order.length) this.spare = new Int32Array(this.order.length);
    let a = this.order,
      b = this.spare;
    for (let w = 1; w < n; w *= 2) {
      for (let lo = 0; lo < n; lo += 2 * w) {
        const mid = Math.min(lo + w, n),
          hi = Math.min(lo + 2 * w, n);
        let i = lo,
          j = mid,
          k = lo;
        while (i < mid && j < hi) b[k++] = x[a[j]] > x[a[i]] ? a[j++] : a[i++];
        while (i < mid) b[k++] = a[i++];
        while (j < hi) b[k++] = a[j++];
      }
      const t = a;
      a = b;
      b = t;
    }
    return a;
  }
}
