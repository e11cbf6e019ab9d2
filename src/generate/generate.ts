import { backendOf } from '../backend/backend.js';
import { fail } from '../errors.js';
import type { LanguageModel, LmConfig } from '../models/lm.js';
import type { ModelState } from '../models/state.js';
import type { Tensor } from '../tensor/tensor.js';
import { deviceTokens } from './device-loop.js';
import { randomSeed } from '../tensor/rng.js';
import { checkSamplingParams, Sampler, type SamplingParams } from '../backend/sampling.js';

/**
 * The token-level generation loop: prefill each prompt (the parallel form, in chunks), then one
 * recurrent step per new token for the whole batch, sampling on the host with `Sampler` — or, on a
 * backend that samples where the logits are (WebGPU), with `deviceTokens`: the same semantics and
 * the same tokens, but only the b new ids cross to the host per token.
 * Text, detokenisation (tokenizer/stream.ts) and stop strings (stop.ts) sit on top of this in
 * `model.ts`'s `generate`.
 */
/** Tokens generated per sequence when the caller does not say. */
export const DEFAULT_MAX_NEW_TOKENS = 64;

export interface GenerateOptions {
  /** Tokens to generate per sequence (default DEFAULT_MAX_NEW_TOKENS). */
  maxNewTokens?: number;
  /** Always take the most likely token (same as temperature 0). */
  greedy?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  /** Seed of the sampler; the same seed, prompt and options give the same tokens. */
  seed?: number;
  /** Token ids that end a sequence (default: the model's eos id, if known). */
  eosTokenIds?: readonly number[];
  /** Keep generating after EOS. */
  ignoreEos?: boolean;
  /** Ids the sampler must never pick (e.g. vocabulary padding rows the tokenizer cannot decode). */
  suppressTokenIds?: readonly number[];
  /** Prompt tokens per forward call during prefill (bounds memory on long prompts; default 512). */
  prefillChunk?: number;
  /** Stops generation early (the promise-based loop checks it between tokens). */
  signal?: AbortSignal;
  /**
   * The state to start from (batch = number of prompts), e.g. a clone of a saved prompt's state: the
   * prompts continue it. It is advanced in place and left to the caller, holding for each row the state
   * after its prompt and every token generated for it (its last one included), so a caller can branch
   * again from the end. Sampling then runs on the host on every backend (the device loop runs ahead).
   */
  state?: ModelState;
}

export type FinishReason = 'eos' | 'length' | 'stop' | 'aborted';

/** One new token for one sequence. */
export interface TokenEvent {
  row: number;
  token: number;
  /** Set on the last event of a row. */
  finish?: FinishReason;
}

export const DEFAULT_SAMPLING = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1.0 } as const;

/** Resolves options into sampling parameters, checking each. */
export function samplingParams(o: GenerateOptions): SamplingParams {
  const p: SamplingParams = {
    temperature: o.greedy ? 0 : (o.temperature ?? DEFAULT_SAMPLING.temperature),
    topK: o.topK ?? DEFAULT_SAMPLING.topK,
    topP: o.topP ?? DEFAULT_SAMPLING.topP,
    minP: o.minP ?? DEFAULT_SAMPLING.minP,
    repetitionPenalty: o.repetitionPenalty ?? DEFAULT_SAMPLING.repetitionPenalty,
    seed: o.seed ?? randomSeed(),
  };
  checkSamplingParams(p);
  return p;
}

/** Host copy of a (b, V) logits tensor, without copying where the host addresses the backend's memory. */
async function hostRows(t: Tensor): Promise<{ data: ArrayLike<number>; off: number; ld: number }> {
  const host = t.dtype === 'f32' ? backendOf(t).hostView?.(t) : undefined;
  if (host) return host;
  return { data: await t.readFloat(), off: 0, ld: t.cols };
}

/**
 * Runs prefill for each prompt and returns the state of the batch and each row's last logits.
 * Prompts of equal length share one forward pass; others are prefilled one by one and their states
 * copied into the batch state (exact: rows of an SSM never interact).
 */
export async function prefill(
  model: LanguageModel<LmConfig>,
  prompts: readonly (readonly number[])[],
  chunk = 512,
  state?: ModelState,
): Promise<{ state: ModelState; last: Float32Array[] }> {
  if (prompts.length === 0) fail('EMPTY_INPUT', 'no prompts given');
  prompts.forEach((p, i) => {
    if (p.length === 0) fail('EMPTY_INPUT', `prompt ${i} is empty: give at least one token`);
    model.checkIds(p);
  });
  const b = prompts.length;
  const st = state ?? model.initState(b);
  if (st.batch !== b) fail('STATE_MISMATCH', `the state has batch ${st.batch}, but ${b} prompts were given`);
  const sameLength = prompts.every((p) => p.length === prompts[0].length);
  if (!sameLength && st.growsWithContext)
    fail(
      'UNSUPPORTED',
      `prompts of different lengths (${prompts.map((p) => p.length).join(', ')}) cannot share one batch of a model ` +
        'with attention layers (their KV cache has one length for the batch): run them separately or give equal lengths',
    );
  const last: Float32Array[] = new Array(b);
  const run = async (rows: readonly (readonly number[])[], s: ModelState): Promise<Float32Array[]> => {
    const l = rows[0].length;
    let logits: Tensor | undefined;
    for (let t0 = 0; t0 < l; t0 += chunk) {
      const t1 = Math.min(l, t0 + chunk);
      const ids = new Int32Array(rows.length * (t1 - t0));
      rows.forEach((r, i) => ids.set(r.slice(t0, t1), i * (t1 - t0)));
      const idT = model.backend.upload(ids, [rows.length, t1 - t0], 'i32');
      logits?.dispose();
      logits = model.forward(idT, { state: s, lastOnly: true });
      idT.dispose();
    }
    const all = await logits!.readFloat();
    logits!.dispose();
    const V = model.vocabSize;
    return rows.map((_, i) => all.subarray(i * V, (i + 1) * V));
  };
  if (sameLength) {
    (await run(prompts, st)).forEach((x, i) => (last[i] = x));
  } else {
    for (let i = 0; i < b; i++) {
      const s1 = model.initState(1);
      if (state) copyRow(s1, 0, st, i); // continue the caller's row
      last[i] = (await run([prompts[i]], s1))[0];
      copyRow(st, i, s1, 0);
      s1.dispose();
    }
    st.position += Math.max(...prompts.map((p) => p.length));
  }
  return { state: st, last };
}

/** Copies row `srcRow` of the state `src` into row `row` of the state `dst` (same model). */
export function copyRow(dst: ModelState, row: number, src: ModelState, srcRow: number): void {
  dst.layers.forEach((layer, li) => {
    for (const [k, t] of Object.entries(layer)) {
      const s = src.layers[li][k];
      // (b, ...) -> rows of b * rest: the row of a sequence is a view of (1, size/b).
      const per = t.size / dst.batch;
      const from = s.reshape([1, s.size]).narrow(srcRow * per, per);
      backendOf(t).copy(t.reshape([1, t.size]).narrow(row * per, per), from);
    }
  });
}

/**
 * Generates tokens for a batch of prompts (token ids), yielding each new token as it is chosen.
 * Rows finish independently (EOS or max tokens); the loop ends when all have finished.
 */
export async function* generateTokens(
  model: LanguageModel<LmConfig>,
  prompts: readonly (readonly number[])[],
  o: GenerateOptions = {},
  isStopped?: (row: number) => boolean,
): AsyncGenerator<TokenEvent> {
  const maxNew = o.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  if (!Number.isInteger(maxNew) || maxNew < 0)
    fail('BAD_ARGUMENT', `max new tokens must be an integer >= 0, got ${maxNew}`);
  const p = samplingParams(o);
  const eos = new Set(
    o.ignoreEos ? [] : (o.eosTokenIds ?? (model.config.eosTokenId !== undefined ? [model.config.eosTokenId] : [])),
  );
  const suppress = o.suppressTokenIds ?? [];
  const b = prompts.length;
  const { state, last } = await prefill(model, prompts, o.prefillChunk ?? 512, o.state);
  const ends = o.state ? new FinalStates(model, state) : null; // rows' states after their last token
  try {
    if (maxNew === 0) return;
    // Sampling on the device where the logits live off the host; with host memory, the reference
    // Sampler reads them in place.
    if (!ends && model.backend.sample && !model.backend.hostView) {
      yield* onDevice(model, state, prompts, last, maxNew, p, eos, suppress, o.signal, isStopped);
      return;
    }
    const seen = prompts.map((pr) => [...pr]);
    const done = new Array<boolean>(b).fill(false);
    const sampler = new Sampler();
    const V = model.vocabSize;
    let rows: { data: ArrayLike<number>; off: number; ld: number } = { data: new Float32Array(0), off: 0, ld: V };
    const next = new Array<number>(b).fill(0);
    const masked = suppress.length ? new Float32Array(V) : null; // one buffer for every row and step
    for (let step = 0; step < maxNew; step++) {
      if (o.signal?.aborted) {
        for (let r = 0; r < b; r++) if (!done[r]) yield { row: r, token: -1, finish: 'aborted' };
        return;
      }
      for (let r = 0; r < b; r++) {
        if (done[r]) continue;
        let data: ArrayLike<number>, off: number;
        if (step === 0) {
          data = last[r];
          off = 0;
        } else {
          data = rows.data;
          off = rows.off + r * rows.ld;
        }
        if (masked) maskRow(data, off, V, suppress, masked);
        const tok = masked
          ? sampler.sample(masked, 0, V, p, seen[r], r, step)
          : sampler.sample(data, off, V, p, seen[r], r, step);
        if (Number.isNaN(tok) || tok < 0)
          fail('NON_FINITE', `sampling failed at step ${step} for sequence ${r}: the logits are not finite`);
        next[r] = tok;
        seen[r].push(tok);
        const ev = tokenEvent(r, tok, eos.has(tok), step === maxNew - 1);
        yield ev;
        if (ev.finish || isStopped?.(r)) done[r] = true;
      }
      if (done.every(Boolean) || step === maxNew - 1) {
        if (ends) model.stepIds(next, state); // feeds each row's last token: rows not saved end here
        break;
      }
      const logits = model.stepIds(next, state);
      ends?.keepRows(done);
      rows = await hostRows(logits);
      checkRowsFinite(rows, b, V, step);
    }
  } finally {
    if (ends) ends.restore();
    else state.dispose();
  }
}

/**
 * The end states of the rows of a caller's state: a row that finishes keeps being stepped with its last
 * token while others go on, so its state just after that token is copied out and put back at the end.
 */
class FinalStates {
  private readonly saved = new Map<number, ModelState>();

  constructor(
    private readonly model: LanguageModel<LmConfig>,
    private readonly state: ModelState,
  ) {}

  /** After a step that fed every row's latest token: copies out the rows that just finished. */
  keepRows(done: readonly boolean[]): void {
    done.forEach((d, r) => {
      if (!d || this.saved.has(r) || this.state.batch === 1) return;
      const one = this.model.initState(1);
      copyRow(one, 0, this.state, r);
      this.saved.set(r, one);
    });
  }

  /** Puts the saved rows back (only rows that ended early differ from what the batch state holds). */
  restore(): void {
    for (const [r, one] of this.saved) {
      copyRow(this.state, r, one, 0);
      one.dispose();
    }
  }
}

/** The loop of `generateTokens` with sampling on the backend (`deviceTokens`); same events. */
async function* onDevice(
  model: LanguageModel<LmConfig>,
  state: ModelState,
  prompts: readonly (readonly number[])[],
  last: Float32Array[],
  maxNew: number,
  p: SamplingParams,
  eos: ReadonlySet<number>,
  suppress: readonly number[],
  signal: AbortSignal | undefined,
  isStopped?: (row: number) => boolean,
): AsyncGenerator<TokenEvent> {
  const b = prompts.length,
    V = model.vocabSize;
  const host = new Float32Array(b * V);
  last.forEach((row, r) => host.set(row, r * V));
  const logits = model.backend.upload(host, [b, V]);
  const done = new Array<boolean>(b).fill(false);
  let step = 0;
  try {
    for await (const ids of deviceTokens(model, state, logits, {
      maxNewTokens: maxNew,
      sampling: p,
      eos,
      suppress,
      prompts,
    })) {
      if (signal?.aborted) {
        for (let r = 0; r < b; r++) if (!done[r]) yield { row: r, token: -1, finish: 'aborted' };
        return;
      }
      for (let r = 0; r < b; r++) {
        if (done[r]) continue;
        const tok = ids[r];
        if (!(tok >= 0 && tok < V))
          fail('NON_FINITE', `sampling failed at step ${step} for sequence ${r}: the logits are not finite`);
        const ev = tokenEvent(r, tok, eos.has(tok), step === maxNew - 1);
        yield ev;
        if (ev.finish || isStopped?.(r)) done[r] = true;
      }
      step++;
      if (done.every(Boolean)) return;
    }
  } finally {
    logits.dispose();
  }
}

/** The event of row r's new token: finished by EOS, or by reaching the last step. */
function tokenEvent(row: number, token: number, isEos: boolean, isLast: boolean): TokenEvent {
  return isEos ? { row, token, finish: 'eos' } : isLast ? { row, token, finish: 'length' } : { row, token };
}

/** Copies a row of logits into x with the suppressed ids at -Infinity. */
function maskRow(data: ArrayLike<number>, off: number, V: number, suppress: readonly number[], x: Float32Array): void {
  for (let i = 0; i < V; i++) x[i] = data[off + i];
  for (const id of suppress) if (id >= 0 && id < V) x[id] = -Infinity;
}

function checkRowsFinite(
  rows: { data: ArrayLike<number>; off: number; ld: number },
  b: number,
  V: number,
  step: number,
): void {
  for (let r = 0; r < b; r++) {
    const o = rows.off + r * rows.ld;
    for (let i = 0; i < V; i++) {
      const v = rows.data[o + i];
      if (Number.isNaN(v))
        fail(
          'NON_FINITE',
          `the model produced NaN logits at generation step ${step + 1} (sequence ${r}, token id ${i}); the weights or input may be corrupt`,
        );
    }
  }
}
