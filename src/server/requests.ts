import { randomSeed } from '../tensor/rng.js';
import type { TextTokenizer } from '../tokenizer/text-tokenizer.js';
import { ApiError, invalid, unsupported } from './api-error.js';
import type { ChatMessage, ChatTemplate } from './chat-template.js';
import type { ChatBody, CompletionBody, SamplingBody } from './schemas.js';
import type { SequenceSampling } from './token-sampler.js';

/**
 * What an OpenAI request asks for, checked beyond its schema (values this server cannot honour, its
 * limits) and turned into token prompts: a request's plan.
 */
export interface Plan {
  kind: 'completion' | 'chat';
  /** Each prompt's ids and where to snapshot it (chat message boundaries). */
  prompts: { ids: number[]; marks: number[] }[];
  stops: string[];
  n: number;
  maxTokens: number;
  sampling: SequenceSampling;
  stream: boolean;
  includeUsage: boolean;
  ignoreEos: boolean;
  /** Alternatives to report with each token's log-probability; null: no log-probabilities. */
  logprobs: number | null;
  /**
   * Chat: the ids the next turn's prompt starts with, given this turn's reply (see the engine's
   * follow-up jobs); null where the template does not render the history as a prefix of the next turn.
   */
  followUp?: ((reply: string) => number[] | null) | undefined;
}

/** Text to ids without added special tokens (a `PrefixTokenizer`'s encode: incremental for long prefixes). */
export type Encode = (text: string) => number[];

export interface Limits {
  modelId: string;
  maxPromptTokens: number;
  maxTokensLimit: number;
  maxRunning: number;
  vocabSize: number;
}

/** OpenAI's defaults: temperature 1, top_p 1, no penalties; top_k, min_p and repetition_penalty off. */
function common(b: SamplingBody & { max_completion_tokens?: number | null }, lim: Limits, maxTokensDefault: number) {
  if (b.model !== lim.modelId) {
    const msg = `The model \`${b.model}\` does not exist; this server serves \`${lim.modelId}\``;
    throw new ApiError(404, msg, 'model', 'model_not_found');
  }
  if (b.logit_bias && Object.keys(b.logit_bias).length) throw unsupported('logit_bias');
  if (b.stream_options && !b.stream) {
    throw invalid('stream_options', 'stream_options is only allowed with stream: true');
  }
  const maxTokens = b.max_completion_tokens ?? b.max_tokens ?? maxTokensDefault;
  const param = b.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  if (maxTokens > lim.maxTokensLimit) {
    throw invalid(param, `${param} is ${maxTokens}; this server allows at most ${lim.maxTokensLimit}`);
  }
  if (maxTokens < 1) throw invalid(param, `${param} must be at least 1`);
  const sampling: SequenceSampling = {
    temperature: b.temperature ?? 1,
    topP: b.top_p ?? 1,
    topK: b.top_k ?? 0,
    minP: b.min_p ?? 0,
    repetitionPenalty: b.repetition_penalty ?? 1,
    presencePenalty: b.presence_penalty ?? 0,
    frequencyPenalty: b.frequency_penalty ?? 0,
    seed: b.seed ?? randomSeed(),
  };
  const stop = b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop;
  return {
    n: b.n ?? 1,
    maxTokens,
    sampling,
    stream: b.stream === true,
    includeUsage: b.stream_options?.include_usage === true,
    ignoreEos: b.ignore_eos === true,
    stops: stop.filter((s) => s.length > 0),
  };
}

function checkPrompt(ids: number[], param: string, lim: Limits): void {
  if (ids.length === 0) throw invalid(param, `${param} is empty: give at least one token`);
  if (ids.length > lim.maxPromptTokens) {
    const msg = `${param} has ${ids.length} tokens; this server allows at most ${lim.maxPromptTokens}`;
    throw invalid(param, msg, 'context_length_exceeded');
  }
  const bad = ids.findIndex((t) => t >= lim.vocabSize);
  if (bad >= 0) {
    const msg = `token id ${ids[bad]} at position ${bad} is out of range: the vocabulary has ${lim.vocabSize} ids`;
    throw invalid(param, msg);
  }
}

function checkRows(p: Plan, lim: Limits): Plan {
  const rows = p.n * p.prompts.length;
  if (rows > lim.maxRunning) {
    throw invalid('n', `n x prompts is ${rows}; at most ${lim.maxRunning} sequences run at once`);
  }
  return p;
}

export function completionPlan(b: CompletionBody, tk: TextTokenizer, lim: Limits, encode?: Encode): Plan {
  const c = common(b, lim, 16); // OpenAI's default max_tokens for completions
  if (b.echo) throw unsupported('echo');
  if (b.best_of != null && b.best_of !== 1) throw unsupported('best_of', 'best_of other than 1 is not supported');
  if (b.suffix) throw unsupported('suffix');
  const raw = b.prompt;
  const list: (string | number[])[] =
    typeof raw === 'string' ? [raw] : typeof raw[0] === 'number' ? [raw as number[]] : (raw as (string | number[])[]);
  const prompts = list.map((p) => {
    const ids = typeof p === 'string' ? (encode ? encode(p) : tk.encode(p, { addSpecialTokens: false })) : p;
    checkPrompt(ids, 'prompt', lim);
    return { ids, marks: [] };
  });
  return checkRows({ kind: 'completion', prompts, ...c, logprobs: b.logprobs ?? null }, lim);
}

export function chatPlan(
  b: ChatBody,
  tk: TextTokenizer,
  template: ChatTemplate,
  lim: Limits,
  encode: Encode = (t) => tk.encode(t, { addSpecialTokens: false }),
): Plan {
  const c = common(b, lim, 256);
  if (b.top_logprobs != null && !b.logprobs) throw invalid('top_logprobs', 'top_logprobs needs logprobs: true');
  const messages: ChatMessage[] = b.messages.map((m) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
  }));
  const { text, messageEnds } = template.renderWithEnds(messages);
  const ids = encode(text);
  checkPrompt(ids, 'messages', lim);
  const logprobs = b.logprobs ? (b.top_logprobs ?? 0) : null;
  const stops = [...c.stops, ...template.stops];
  const marks = messageMarks(tk, ids, messageEnds);
  const followUp = (reply: string): number[] | null => nextTurnIds(tk, template, encode, messages, reply);
  return checkRows({ kind: 'chat', prompts: [{ ids, marks }], ...c, stops, logprobs, followUp }, lim);
}

/**
 * The ids the next turn's prompt will start with: the history with this reply, up to the end of the
 * reply's turn (its end-of-turn text included), as the next request will render and tokenize it. The
 * next message is not known yet, so a stand-in user message follows the reply (tokens at the end of
 * the turn may merge with the text after it: only those ending at or before the turn's end are kept).
 * Null where the template renders the history differently once a message follows (one that rewrites
 * earlier turns): then no snapshot can be a prefix of the next prompt.
 */
function nextTurnIds(
  tk: TextTokenizer,
  template: ChatTemplate,
  encode: Encode,
  messages: readonly ChatMessage[],
  reply: string,
): number[] | null {
  const done: ChatMessage[] = [...messages, { role: 'assistant', content: reply }];
  const head = template.render(done, false);
  const next = template.render([...done, { role: 'user', content: 'Go on.' }]);
  if (!next.startsWith(head)) return null;
  const ids = encode(next);
  const t = tokensWithin(tk, ids, head.length);
  return t > 0 ? ids.slice(0, t) : null;
}

/** How many of the first tokens of `ids` end at or before text offset `end` (by their texts' lengths). */
function tokensWithin(tk: TextTokenizer, ids: readonly number[], end: number): number {
  const lengths = lengthsOf(tk);
  let at = 0;
  for (let t = 0; t < ids.length; t++) {
    at += tokenLength(tk, lengths, ids[t]);
    if (at > end) return t;
  }
  return ids.length;
}

function lengthsOf(tk: TextTokenizer): Map<number, number> {
  let lengths = tokenLengths.get(tk);
  if (!lengths) tokenLengths.set(tk, (lengths = new Map()));
  return lengths;
}

function tokenLength(tk: TextTokenizer, lengths: Map<number, number>, id: number): number {
  let n = lengths.get(id);
  if (n === undefined) lengths.set(id, (n = tk.decode([id]).length));
  return n;
}

const tokenLengths = new WeakMap<TextTokenizer, Map<number, number>>();

/**
 * Snapshot marks at message boundaries: the token counts t where the text of ids[0, t) ends exactly at
 * a message end. Found by adding up each token's text length (memoised per id) instead of encoding
 * every message prefix again. Where a token's text is not whole (a character split over tokens) the
 * sums drift and a later mark may be missed or land elsewhere; that costs only a snapshot nobody uses,
 * since a snapshot is keyed by the exact ids it consumed.
 */
function messageMarks(tk: TextTokenizer, ids: readonly number[], messageEnds: readonly number[]): number[] {
  const lengths = lengthsOf(tk);
  const marks: number[] = [];
  let at = 0,
    next = 0;
  for (let t = 0; t < ids.length - 1 && next < messageEnds.length; t++) {
    at += tokenLength(tk, lengths, ids[t]);
    while (next < messageEnds.length && messageEnds[next] < at) next++;
    if (messageEnds[next] === at) {
      marks.push(t + 1);
      next++;
    }
  }
  return marks;
}
