import { Sampler } from '../backend/sampling.js';
import { fail } from '../errors.js';
import type { LanguageModel, LmConfig } from '../models/lm.js';
import type { ModelState } from '../models/state.js';
import { prefill, samplingParams, type GenerateOptions, type TokenEvent } from './generate.js';

/**
 * Lets the event loop run between tokens (a key press, a signal, a socket) where the step itself completes without
 * a macrotask (the CPU backend's promises can all be microtasks).
 */
function yieldToEvents(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => unknown };
  return new Promise((resolve) => (g.setImmediate ? g.setImmediate(resolve) : setTimeout(resolve, 0)));
}

/** How `ChatSession.advanceTo` reached the new conversation's end. */
export type ChatResume = 'continue' | 'boundary' | 'scratch';

/**
 * One conversation's recurrent state, reused from turn to turn: a new turn feeds only the tokens beyond what the
 * state has already consumed, never the whole history again.
 *
 * Each turn the caller renders the whole conversation (chat template) and tokenises it; `advanceTo` compares those
 * ids with the ids the state has consumed (`fed`) and feeds only the suffix. The ids can differ before the end of
 * `fed`: the previous reply's tokens may tokenise differently once rendered as text, and some templates rewrite
 * earlier turns (drop a reasoning block from past replies, put today's date in the system prompt). An SSM state
 * cannot be rewound, so the session keeps one copy of the state at the last message boundary (after the latest
 * turn's prompt, before the reply) and re-feeds from there when the first difference lies after it (the usual
 * case: only the reply is re-fed), else from scratch (a rewritten earlier turn: the whole conversation again).
 */
export class ChatSession {
  /** The conversation's state: after every id of `fed`. */
  readonly state: ModelState;
  private fedIds: number[] = [];
  private boundary: { length: number; state: ModelState } | null = null;
  /** Tokens run through the model over the session's life (prompt suffixes fed, generated tokens stepped). */
  tokensRun = 0;
  /** Random-draw key of the next generated token, so that turns draw afresh with one seed. */
  private drawStep = 0;
  private readonly sampler = new Sampler();

  constructor(readonly lm: LanguageModel<LmConfig>) {
    this.state = lm.initState(1);
  }

  /** Every token id the state has consumed, in order. */
  get fed(): readonly number[] {
    return this.fedIds;
  }

  /**
   * Brings the state to the end of `ids` (the conversation rendered so far, generation prompt included), feeding
   * as little as possible, and returns the logits after its last id: what the reply is sampled from.
   */
  async advanceTo(
    ids: readonly number[],
    chunk = 512,
  ): Promise<{ logits: Float32Array; fed: number; reused: number; resume: ChatResume }> {
    if (ids.length === 0) fail('EMPTY_INPUT', 'the rendered conversation has no tokens');
    this.lm.checkIds(ids);
    // The first id that differs; at least one id is fed so that there are logits to sample from.
    let p = 0;
    const max = Math.min(this.fedIds.length, ids.length - 1);
    while (p < max && this.fedIds[p] === ids[p]) p++;
    let resume: ChatResume = 'continue';
    if (p < this.fedIds.length) {
      if (this.boundary && this.boundary.length <= p) {
        this.state.copyFrom(this.boundary.state);
        this.fedIds.length = this.boundary.length;
        resume = 'boundary';
      } else {
        const zero = this.lm.initState(1);
        this.state.copyFrom(zero);
        zero.dispose();
        this.fedIds.length = 0;
        resume = 'scratch';
      }
    }
    const reused = this.fedIds.length;
    const suffix = ids.slice(reused);
    const { last } = await prefill(this.lm, [suffix], chunk, this.state);
    this.fedIds.push(...suffix);
    this.tokensRun += suffix.length;
    if (this.boundary) this.boundary.state.copyFrom(this.state);
    else this.boundary = { length: 0, state: this.state.clone() };
    this.boundary.length = this.fedIds.length;
    return { logits: last[0], fed: suffix.length, reused, resume };
  }

  /**
   * Samples the reply from `logits` (what `advanceTo` returned), stepping the state with each token but the last:
   * a token that ends the reply (EOS, the last allowed, a stop string) is not fed; the next turn's rendered
   * conversation holds it (or the template's own end of turn) and `advanceTo` feeds from there.
   */
  async *generate(
    logits: Float32Array,
    o: GenerateOptions = {},
    isStopped?: () => boolean,
  ): AsyncGenerator<TokenEvent> {
    const maxNew = o.maxNewTokens ?? 256;
    if (!Number.isInteger(maxNew) || maxNew < 1)
      fail('BAD_ARGUMENT', `max new tokens must be an integer >= 1, got ${maxNew}`);
    const p = samplingParams(o);
    const eos = new Set(o.ignoreEos ? [] : (o.eosTokenIds ?? []));
    const suppress = o.suppressTokenIds ?? [];
    const V = this.lm.vocabSize;
    let row: Float32Array = logits;
    for (let step = 0; step < maxNew; step++) {
      if (o.signal?.aborted) {
        yield { row: 0, token: -1, finish: 'aborted' };
        return;
      }
      if (suppress.length) {
        row = row === logits ? row.slice() : row;
        for (const id of suppress) if (id >= 0 && id < V) row[id] = -Infinity;
      }
      const tok = this.sampler.sample(row, 0, V, p, this.fedIds, 0, this.drawStep++);
      if (Number.isNaN(tok) || tok < 0)
        fail('NON_FINITE', `sampling failed at reply token ${step + 1}: the logits are not finite`);
      const finish = eos.has(tok) ? 'eos' : step === maxNew - 1 ? 'length' : undefined;
      yield finish ? { row: 0, token: tok, finish } : { row: 0, token: tok };
      if (finish || isStopped?.()) return;
      row = await this.lm.stepIds([tok], this.state).readFloat(); // (1, V), the model's step workspace
      this.fedIds.push(tok);
      this.tokensRun++;
      await yieldToEvents();
    }
  }

  /** Releases the state and the boundary copy. */
  dispose(): void {
    this.state.dispose();
    this.boundary?.state.dispose();
    this.boundary = null;
  }
}
