import { Sampler, checkSamplingParams, type SamplingParams } from '../backend/sampling.js';

/**
 * The sampling of one server sequence: the library's reference sampler (repetition penalty,
 * temperature, top-k, top-p, min-p, counter-based draws keyed by (seed, row, step)) after OpenAI's
 * additive penalties, which the library's sampler does not have:
 *   logit[t] -= presence_penalty * (count[t] > 0) + frequency_penalty * count[t]
 * where count[t] is how often t occurs in the completion so far (vLLM's reading: generated tokens only).
 * `row` is the choice index, so choice i of a request draws what row i of `Model.generate` draws,
 * whatever batch row the scheduler gives it.
 */
export interface SequenceSampling extends SamplingParams {
  presencePenalty: number;
  frequencyPenalty: number;
}

export class TokenSampler {
  private readonly sampler = new Sampler();
  private readonly counts = new Map<number, number>();
  private buf = new Float32Array(0);
  /** Prompt and generated ids (what the repetition penalty looks at). */
  readonly seen: number[];
  step = 0;

  constructor(
    readonly params: SequenceSampling,
    prompt: readonly number[],
    private readonly row: number,
    /** Ids never chosen (vocabulary padding rows the tokenizer cannot decode). */
    private readonly suppress: readonly number[],
  ) {
    checkSamplingParams(params);
    this.seen = [...prompt];
  }

  /** Picks the next token from logits[off .. off + V) and records it. NaN logits give -1. */
  next(logits: ArrayLike<number>, off: number, V: number): number {
    const p = this.params;
    let data = logits,
      o = off;
    if (this.suppress.length || (this.counts.size && (p.presencePenalty || p.frequencyPenalty))) {
      if (this.buf.length < V) this.buf = new Float32Array(V);
      const x = this.buf;
      for (let i = 0; i < V; i++) x[i] = logits[off + i];
      for (const [t, c] of this.counts) x[t] = x[t] - p.presencePenalty - p.frequencyPenalty * c;
      for (const t of this.suppress) if (t >= 0 && t < V) x[t] = -Infinity;
      data = x;
      o = 0;
    }
    // (-1 on a NaN logit: the sampler's first pass looks at every value anyway)
    const seen = p.repetitionPenalty !== 1 ? this.seen : null;
    const tok = this.sampler.sampleFinite(data, o, V, p, seen, this.row, this.step);
    if (tok < 0) return -1;
    this.step++;
    this.seen.push(tok);
    this.counts.set(tok, (this.counts.get(tok) ?? 0) + 1);
    return tok;
  }
}

/** A chosen token's log-probability and the k most likely alternatives (id, log-probability). */
export interface TokenLogprob {
  logprob: number;
  top: [number, number][];
}

/**
 * Log-probabilities of the model's own distribution at this position: log-softmax of the raw logits
 * (before temperature, penalties and truncation, as vLLM reports them by default).
 */
export function tokenLogprobs(
  logits: ArrayLike<number>,
  off: number,
  V: number,
  token: number,
  k: number,
): TokenLogprob {
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[off + i] > max) max = logits[off + i];
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(logits[off + i] - max);
  const norm = max + Math.log(sum);
  const top: [number, number][] = [];
  for (let i = 0; i < V && k > 0; i++) {
    const x = logits[off + i];
    if (top.length === k && x <= top[k - 1][1]) continue;
    let j = Math.min(top.length, k - 1);
    while (j > 0 && top[j - 1][1] < x) j--;
    top.splice(j, 0, [i, x]);
    if (top.length > k) top.pop();
  }
  return { logprob: logits[off + token] - norm, top: top.map(([i, x]) => [i, x - norm]) };
}
