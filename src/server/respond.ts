import { randomUUID } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import type { FinishReason } from '../generate/generate.js';
import { StopStringFilter } from '../generate/stop.js';
import { DetokenizeStream } from '../tokenizer/stream.js';
import type { TextTokenizer } from '../tokenizer/text-tokenizer.js';
import { toApiError } from './api-error.js';
import type { Engine, EngineResult } from './engine.js';
import type { ServerMetrics } from './metrics.js';
import type { Plan } from './requests.js';
import type { TokenLogprob } from './token-sampler.js';

/**
 * Runs a plan on the engine and answers in OpenAI's formats: one JSON body, or server-sent events
 * (`data: {chunk}` per piece of text, `data: [DONE]` at the end). Text goes through a detokenizing
 * stream and the stop-string filter per choice; a client that goes away aborts its sequences, which
 * leave the batch at the next step.
 */
export interface RespondContext {
  engine: Engine;
  metrics: ServerMetrics;
  tokenizer: TextTokenizer;
  modelId: string;
  eos: readonly number[];
  suppress: readonly number[];
}

interface Choice {
  index: number;
  text: string;
  tokens: number;
  finish: 'stop' | 'length' | null;
  sentRole: boolean;
  detok: DetokenizeStream;
  stop: StopStringFilter;
  /** Log-probabilities of every token, and of those not yet sent in a chunk. */
  logprobs: Logprob[];
  unsent: Logprob[];
}

interface Logprob {
  token: string;
  logprob: number;
  top: [string, number][];
}

/** Log-probabilities in the shape of each API: the completions' four lists, or chat's `content`. */
function logprobsOf(kind: Plan['kind'], lps: Logprob[]): object {
  if (kind === 'chat') {
    const bytes = (t: string): number[] => [...Buffer.from(t, 'utf8')];
    const content = lps.map((e) => ({
      token: e.token,
      logprob: e.logprob,
      bytes: bytes(e.token),
      top_logprobs: e.top.map(([token, logprob]) => ({ token, logprob, bytes: bytes(token) })),
    }));
    return { content };
  }
  let at = 0;
  const textOffset = lps.map((e) => {
    const o = at;
    at += e.token.length;
    return o;
  });
  return {
    tokens: lps.map((e) => e.token),
    token_logprobs: lps.map((e) => e.logprob),
    top_logprobs: lps.map((e) => Object.fromEntries(e.top)),
    text_offset: textOffset,
  };
}

export async function respond(cx: RespondContext, plan: Plan, reply: FastifyReply): Promise<unknown> {
  const { kind, n, stream } = plan;
  const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`;
  const created = Math.floor(Date.now() / 1000);
  const object = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  const head = { id, object, created, model: cx.modelId };
  const ac = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) ac.abort();
  }); // the client went away
  const choices: Choice[] = plan.prompts.flatMap((_, pi) =>
    Array.from({ length: n }, (_, c) => ({
      index: pi * n + c,
      text: '',
      tokens: 0,
      finish: null,
      sentRole: false,
      detok: new DetokenizeStream(cx.tokenizer),
      stop: new StopStringFilter(plan.stops),
      logprobs: [],
      unsent: [],
    })),
  );
  const withLogprobs = plan.logprobs !== null;
  const sendLogprobs = (ch: Choice): object | null => {
    if (!withLogprobs) return null;
    const lp = logprobsOf(kind, ch.unsent);
    ch.unsent = [];
    return lp;
  };
  const send = (obj: object): void => {
    if (!reply.raw.destroyed) reply.raw.write(`data: ${JSON.stringify(obj)}\n\n`);
  };
  const chunk = (ch: Choice, text: string): object => {
    const c = { index: ch.index, logprobs: sendLogprobs(ch), finish_reason: ch.finish };
    if (kind === 'completion') return { ...head, choices: [{ ...c, text }] };
    const delta = ch.sentRole ? (text ? { content: text } : {}) : { role: 'assistant', content: text };
    return { ...head, system_fingerprint: null, choices: [{ ...c, delta }] };
  };
  // Most chunks are a choice's next text and nothing else: their JSON is that of `chunk` with '' as the
  // text, the text's own JSON in place of the "" (the last one: only closing brackets follow it), so
  // each token costs one JSON.stringify of its text instead of building and serialising the chunk.
  const around = new Map<number, [string, string]>();
  const sendText = (ch: Choice, text: string): void => {
    if (withLogprobs || ch.finish !== null || (kind === 'chat' && !(ch.sentRole && text))) {
      send(chunk(ch, text));
      return;
    }
    let parts = around.get(ch.index);
    if (!parts) {
      const empty = `data: ${JSON.stringify(kind === 'chat' ? chunk(ch, '-') : chunk(ch, ''))}\n\n`;
      const at = empty.lastIndexOf(kind === 'chat' ? '"-"' : '""');
      parts = [empty.slice(0, at), empty.slice(at + (kind === 'chat' ? 3 : 2))];
      around.set(ch.index, parts);
    }
    if (!reply.raw.destroyed) reply.raw.write(parts[0] + JSON.stringify(text) + parts[1]);
  };
  if (stream) {
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
  }
  const onToken = (ch: Choice, token: number, finish?: FinishReason, lp?: TokenLogprob): void => {
    let text = '';
    if (lp && token >= 0 && finish !== 'eos') {
      const str = (id: number): string => cx.tokenizer.decode([id]);
      const known = lp.top.filter(([id]) => id < cx.tokenizer.vocabSize); // not vocabulary padding
      const e = { token: str(token), logprob: lp.logprob, top: known.map(([id, l]): [string, number] => [str(id), l]) };
      ch.logprobs.push(e);
      ch.unsent.push(e);
    }
    if (token >= 0) {
      ch.tokens++;
      cx.metrics.completionTokens.inc();
      text = ch.stop.push(finish === 'eos' ? '' : ch.detok.push(token)); // the EOS token has no text
    }
    if (finish && finish !== 'aborted' && !ch.stop.done) text += ch.stop.push(ch.detok.flush()) + ch.stop.flush();
    ch.text += text;
    if (finish) ch.finish = finish === 'length' ? 'length' : 'stop';
    if (stream && (text || finish) && finish !== 'aborted') {
      sendText(ch, text);
      ch.sentRole = true;
    }
  };
  const results: EngineResult[] = [];
  try {
    await Promise.all(
      plan.prompts.map((p, pi) => {
        cx.metrics.promptTokens.inc(p.ids.length);
        const mine = choices.slice(pi * n, (pi + 1) * n);
        return cx.engine
          .submit({
            prompt: p.ids,
            snapshotAt: p.marks,
            n,
            maxTokens: plan.maxTokens,
            sampling: plan.sampling,
            suppress: cx.suppress,
            signal: ac.signal,
            eos: plan.ignoreEos ? [] : cx.eos,
            logprobs: plan.logprobs ?? undefined,
            onToken: (c, t, f, lp) => onToken(mine[c], t, f, lp),
            isStopped: (c) => mine[c].stop.done,
            // a chat reply's end is kept where the next turn will look for it (one choice: one history)
            followUp: plan.followUp && n === 1 ? () => plan.followUp!(mine[0].text) : undefined,
          })
          .then((r) => {
            results[pi] = r;
          });
      }),
    );
  } catch (e) {
    ac.abort(); // the other prompts of this request stop too
    if (!stream) throw e;
    send(toApiError(e).body);
    reply.raw.end();
    return reply;
  }
  const promptTokens = plan.prompts.reduce((s, p) => s + p.ids.length, 0);
  const completionTokens = choices.reduce((s, c) => s + c.tokens, 0);
  const usage = {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: results.reduce((s, r) => s + (r?.cachedTokens ?? 0), 0) },
  };
  if (stream) {
    if (plan.includeUsage) send({ ...head, choices: [], usage });
    if (!reply.raw.destroyed) reply.raw.end('data: [DONE]\n\n');
    return reply;
  }
  if (ac.signal.aborted) return reply; // nobody to answer
  if (kind === 'completion') {
    const out = choices.map((c) => ({
      index: c.index,
      text: c.text,
      finish_reason: c.finish,
      logprobs: withLogprobs ? logprobsOf(kind, c.logprobs) : null,
    }));
    return { ...head, choices: out, usage };
  }
  const out = choices.map((c) => ({
    index: c.index,
    message: { role: 'assistant', content: c.text },
    logprobs: withLogprobs ? logprobsOf(kind, c.logprobs) : null,
    finish_reason: c.finish,
  }));
  return { ...head, object: 'chat.completion', system_fingerprint: null, choices: out, usage };
}
