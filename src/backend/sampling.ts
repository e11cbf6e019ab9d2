import { fail } from '../errors.js';
import { uniform } from '../tensor/rng.js';

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
 */
export interface SamplingParams {
  /** 0 means greedy. */
  temperature: number;
  /** 0 disables. */
  topK: number;
  /** 1 disables. */
  topP: number;
  /** 0 disables. */
  minP: number;
  /** 1 disables. */
  repetitionPenalty: number;
  seed: number;
}

export const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 0 };

export function checkSamplingParams(p: SamplingParams): void {
  const bad = (what: string, v: number, want: string): never =>
    fail('BAD_ARGUMENT', `${what} must be ${want}, got ${v}`);
  if (!(p.temperature >= 0) || !Number.isFinite(p.temperature))
    bad('temperature', p.temperature, 'a finite number >= 0');
  if (!Number.isInteger(p.topK) || p.topK < 0) bad('top-k', p.topK, 'an integer >= 0 (0 disables)');
  if (!(p.topP > 0 && p.topP <= 1)) bad('top-p', p.topP, 'in (0, 1] (1 disables)');
  if (!(p.minP >= 0 && p.minP <= 1)) bad('min-p', p.minP, 'in [0, 1] (0 disables)');
  if (!(p.repetitionPenalty > 0) || !Number.isFinite(p.repetitionPenalty))
    bad('repetition penalty', p.repetitionPenalty, 'a finite number > 0 (1 disables)');
  if (!Number.isInteger(p.seed) || p.seed < 0 || p.seed > 0xffffffff) bad('seed', p.seed, 'an integer in [0, 2^32)');
}

/** Scratch arrays reused across calls (sampling allocates nothing per token once warmed up). */
export class Sampler {
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

/** The k-th largest of x[0..V) (1-based k), by quickselect on a copy. */
function kthLargest(x: Float64Array, V: number, k: number): number {
  const a = Float64Array.from(x.subarray(0, V));
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
