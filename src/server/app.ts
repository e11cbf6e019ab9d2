import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { fail, isMambaError } from '../errors.js';
import type { FinishReason } from '../generate/generate.js';
import { randomSeed } from '../generate/rng.js';
import { StopStringFilter } from '../generate/stop.js';
import type { Model } from '../model.js';
import { DetokenizeStream } from '../tokenizer/stream.js';
import { ChatTemplate, type ChatMessage } from './chat-template.js';
import { Engine, type EngineResult } from './engine.js';
import { ServerMetrics } from './metrics.js';
import { modelFingerprint, PromptCache, type SnapshotStore } from './prompt-cache.js';
import { chatSchema, completionSchema, type ChatBody, type CompletionBody, type SamplingBody } from './schemas.js';

/**
 * The OpenAI-compatible HTTP API over the batching engine.
 *
 * Why fastify: request bodies are validated by JSON Schema (ajv) before a handler runs, so a wrong type
 * or an unknown field becomes a 400 naming the field without hand-written checks; it is fast, actively
 * maintained, and a handler can take over the raw response (`reply.hijack()`) to stream server-sent
 * events chunk by chunk.
 */
export interface ServerOptions {
  model: Model;
  /** The name clients pass as `model` (GET /v1/models lists it). */
  modelId: string;
  chatTemplate?: ChatTemplate | undefined;
  /** Requests to /v1/* need `Authorization: Bearer <apiKey>`. */
  apiKey?: string | undefined;
  maxBodyBytes?: number | undefined;
  maxPromptTokens?: number | undefined;
  maxTokensLimit?: number | undefined;
  maxRunning?: number | undefined;
  maxQueued?: number | undefined;
  prefillChunk?: number | undefined;
  snapshotEvery?: number | undefined;
  /** Bytes of the in-memory prompt cache (0 turns the cache off). */
  cacheBytes?: number | undefined;
  /** A snapshot store shared by replicas (Redis). */
  store?: SnapshotStore | undefined;
  /** fastify's logger (pino) on stderr. */
  logger?: boolean | undefined;
  log?: ((msg: string) => void) | undefined;
}

export const DEFAULTS = {
  maxBodyBytes: 1 << 20, maxPromptTokens: 8192, maxTokensLimit: 4096, maxRunning: 16, maxQueued: 64,
  prefillChunk: 64, snapshotEvery: 256, cacheBytes: 256 << 20,
} as const;

export interface Server {
  app: FastifyInstance;
  engine: Engine;
  metrics: ServerMetrics;
  cache: PromptCache | undefined;
  /** Stops taking requests, lets running ones finish for up to graceMs (then cancels them), closes. */
  close(graceMs?: number): Promise<void>;
}

/** An error in OpenAI's shape. */
class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null, readonly code: string | null = null, readonly type = 'invalid_request_error') {
    super(message);
  }
}

function errorBody(e: ApiError): object {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}

export async function createServer(o: ServerOptions): Promise<Server> {
  const { model } = o;
  const lim: Record<keyof typeof DEFAULTS, number> = { ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) lim[k] = o[k] ?? DEFAULTS[k];
  const tk = model.tokenizer ?? fail('BAD_ARGUMENT', `${model.source} has no tokenizer.json: the server needs one to turn text into tokens`);
  const template = o.chatTemplate ?? ChatTemplate.fallback();
  const metrics = new ServerMetrics();
  const log = o.log ?? ((m: string) => process.stderr.write(`mamba-ts serve: ${m}\n`));
  const cache = lim.cacheBytes > 0 ? new PromptCache(model.lm, { maxBytes: lim.cacheBytes, store: o.store, fingerprint: await modelFingerprint(model.lm), log }) : undefined;
  const engine = new Engine(model.lm, { maxRunning: lim.maxRunning, maxQueued: lim.maxQueued, prefillChunk: lim.prefillChunk, snapshotEvery: lim.snapshotEvery, cache, observer: metrics });
  const eos = tk.stopTokenIds.length ? tk.stopTokenIds : model.config.eosTokenId !== undefined ? [model.config.eosTokenId] : [];
  const suppress = tk.vocabSize < model.lm.vocabSize ? Array.from({ length: model.lm.vocabSize - tk.vocabSize }, (_, i) => tk.vocabSize + i) : [];
  let closing = false;

  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: lim.maxBodyBytes,
    // close() runs after the engine has drained: what is left are idle keep-alive sockets, closed at once
    forceCloseConnections: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
  });

  app.addHook('onRequest', async (req) => {
    if (!o.apiKey || !req.url.startsWith('/v1/')) return;
    if (req.headers.authorization !== `Bearer ${o.apiKey}`) throw new ApiError(401, 'Incorrect or missing API key: send "Authorization: Bearer <key>"', null, 'invalid_api_key');
  });

  app.setErrorHandler((err: FastifyError | ApiError, req, reply) => {
    const e = toApiError(err);
    if (e.status >= 500) req.log.error(err);
    if (e.status === 429) void reply.header('retry-after', '1');
    void reply.code(e.status).send(errorBody(e));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(errorBody(new ApiError(404, `no route ${req.method} ${req.url}`, null, 'not_found')));
  });
  app.addHook('onResponse', async (req, reply) => {
    const endpoint = req.routeOptions.url;
    if (endpoint?.startsWith('/v1/')) metrics.requests.inc({ endpoint, status: String(reply.statusCode) });
  });

  app.get('/health', async (_req, reply) => {
    if (closing) return reply.code(503).send({ status: 'shutting_down' });
    return { status: 'ok', model: o.modelId, running: engine.rows, queued: engine.queued, cache: cache ? { entries: cache.size, bytes: cache.bytes } : null };
  });
  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.get('/v1/models', async () => ({ object: 'list', data: [{ id: o.modelId, object: 'model', created: 0, owned_by: 'mamba-ts' }] }));

  // ---- generation ---------------------------------------------------------------------------------

  interface Plan {
    prompts: { ids: number[]; marks: number[] }[];
    stops: string[];
  }

  const checkCommon = (b: SamplingBody & { max_completion_tokens?: number | null }, maxTokensDefault: number): number => {
    if (b.model !== o.modelId) throw new ApiError(404, `The model \`${b.model}\` does not exist; this server serves \`${o.modelId}\``, 'model', 'model_not_found');
    if (b.logprobs) throw new ApiError(400, 'logprobs are not supported by this server', 'logprobs', 'unsupported_parameter');
    if (b.logit_bias && Object.keys(b.logit_bias).length) throw new ApiError(400, 'logit_bias is not supported by this server', 'logit_bias', 'unsupported_parameter');
    if (b.stream_options && !b.stream) throw new ApiError(400, 'stream_options is only allowed with stream: true', 'stream_options');
    const max = b.max_completion_tokens ?? b.max_tokens ?? maxTokensDefault;
    const param = b.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
    if (max > lim.maxTokensLimit) throw new ApiError(400, `${param} is ${max}; this server allows at most ${lim.maxTokensLimit}`, param, 'invalid_value');
    if (max < 1) throw new ApiError(400, `${param} must be at least 1`, param, 'invalid_value');
    return max;
  };

  const checkPromptLength = (ids: number[], param: string): void => {
    if (ids.length === 0) throw new ApiError(400, `${param} is empty: give at least one token`, param, 'invalid_value');
    if (ids.length > lim.maxPromptTokens) throw new ApiError(400, `${param} has ${ids.length} tokens; this server allows at most ${lim.maxPromptTokens}`, param, 'context_length_exceeded');
    const V = model.lm.vocabSize;
    const bad = ids.findIndex((t) => t >= V);
    if (bad >= 0) throw new ApiError(400, `token id ${ids[bad]} at position ${bad} is out of range: the vocabulary has ${V} ids`, param, 'invalid_value');
  };

  const stopList = (s: string | string[] | null | undefined): string[] => (s == null ? [] : typeof s === 'string' ? [s] : s).filter((x) => x.length > 0);

  app.post<{ Body: CompletionBody }>('/v1/completions', { schema: { body: completionSchema } }, async (req, reply) => {
    const b = req.body;
    const maxTokens = checkCommon(b, 16);
    if (b.echo) throw new ApiError(400, 'echo is not supported by this server', 'echo', 'unsupported_parameter');
    if (b.best_of != null && b.best_of !== 1) throw new ApiError(400, 'best_of other than 1 is not supported', 'best_of', 'unsupported_parameter');
    if (b.suffix) throw new ApiError(400, 'suffix is not supported by this server', 'suffix', 'unsupported_parameter');
    const raw = b.prompt;
    const list: (string | number[])[] = typeof raw === 'string' ? [raw] : typeof raw[0] === 'number' ? [raw as number[]] : (raw as (string | number[])[]);
    const prompts = list.map((p) => {
      const ids = typeof p === 'string' ? tk.encode(p, { addSpecialTokens: false }) : p;
      checkPromptLength(ids, 'prompt');
      return { ids, marks: [] };
    });
    return generate(req, reply, 'completion', b, { prompts, stops: stopList(b.stop) }, maxTokens);
  });

  app.post<{ Body: ChatBody }>('/v1/chat/completions', { schema: { body: chatSchema } }, async (req, reply) => {
    const b = req.body;
    const maxTokens = checkCommon(b, 256);
    if (b.top_logprobs) throw new ApiError(400, 'top_logprobs is not supported by this server', 'top_logprobs', 'unsupported_parameter');
    const messages: ChatMessage[] = b.messages.map((m) => ({
      role: m.role === 'developer' ? 'system' : m.role,
      content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
    }));
    const { text, messageEnds } = template.renderWithEnds(messages);
    const ids = tk.encode(text, { addSpecialTokens: false });
    checkPromptLength(ids, 'messages');
    // snapshot marks: message ends whose tokens are a prefix of the whole prompt's tokens
    const marks: number[] = [];
    for (const end of messageEnds) {
      const head = tk.encode(text.slice(0, end), { addSpecialTokens: false });
      if (head.length < ids.length && head.every((t, i) => t === ids[i])) marks.push(head.length);
    }
    return generate(req, reply, 'chat', b, { prompts: [{ ids, marks }], stops: [...stopList(b.stop), ...template.stops] }, maxTokens);
  });

  async function generate(_req: FastifyRequest, reply: FastifyReply, kind: 'completion' | 'chat', b: SamplingBody, plan: Plan, maxTokens: number): Promise<unknown> {
    if (closing) throw new ApiError(503, 'the server is shutting down', null, 'shutting_down', 'server_error');
    if (!engine.canTake(plan.prompts.length)) throw new ApiError(429, `the server is busy: ${engine.queued} requests are waiting; retry later`, null, 'rate_limit_exceeded', 'requests');
    const n = b.n ?? 1;
    if (n * plan.prompts.length > lim.maxRunning) throw new ApiError(400, `n x prompts is ${n * plan.prompts.length}; at most ${lim.maxRunning} sequences run at once`, 'n', 'invalid_value');
    const sampling = {
      temperature: b.temperature ?? 1, topP: b.top_p ?? 1, topK: b.top_k ?? 0, minP: b.min_p ?? 0,
      repetitionPenalty: b.repetition_penalty ?? 1, presencePenalty: b.presence_penalty ?? 0,
      frequencyPenalty: b.frequency_penalty ?? 0, seed: b.seed ?? randomSeed(),
    };
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`;
    const created = Math.floor(Date.now() / 1000);
    const stream = b.stream === true;
    const ac = new AbortController();
    reply.raw.on('close', () => { if (!reply.raw.writableFinished) ac.abort(); }); // the client went away
    const choices = plan.prompts.flatMap((_, pi) => Array.from({ length: n }, (_, c) => ({
      index: pi * n + c, text: '', tokens: 0, finish: null as string | null, sentRole: false,
      detok: new DetokenizeStream(tk), stop: new StopStringFilter(plan.stops),
    })));
    const chunk = (index: number, text: string, finish: string | null): object => kind === 'chat'
      ? { id, object: 'chat.completion.chunk', created, model: o.modelId, system_fingerprint: null, choices: [{ index, delta: choices[index]!.sentRole ? (text ? { content: text } : {}) : { role: 'assistant', content: text }, logprobs: null, finish_reason: finish }] }
      : { id, object: 'text_completion', created, model: o.modelId, choices: [{ index, text, logprobs: null, finish_reason: finish }] };
    const send = (obj: object): void => { if (!reply.raw.destroyed) reply.raw.write(`data: ${JSON.stringify(obj)}\n\n`); };
    if (stream) {
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    }
    const onToken = (index: number, token: number, finish?: FinishReason): void => {
      const ch = choices[index]!;
      let text = '';
      if (token >= 0) {
        ch.tokens++;
        metrics.completionTokens.inc();
        const piece = finish === 'eos' ? '' : ch.detok.push(token);
        text = ch.stop.push(piece);
      }
      if (finish && finish !== 'aborted' && !ch.stop.done) text += ch.stop.push(ch.detok.flush()) + ch.stop.flush();
      ch.text += text;
      if (finish) ch.finish = finish === 'length' ? 'length' : 'stop';
      if (stream && (text || finish) && finish !== 'aborted') {
        send(chunk(index, text, ch.finish));
        ch.sentRole = true;
      }
    };
    const results: EngineResult[] = [];
    try {
      await Promise.all(plan.prompts.map((p, pi) => {
        metrics.promptTokens.inc(p.ids.length);
        return engine.submit({
          prompt: p.ids, snapshotAt: p.marks, n, maxTokens, sampling, suppress, signal: ac.signal,
          eos: b.ignore_eos ? [] : eos,
          onToken: (c, t, f) => onToken(pi * n + c, t, f),
          isStopped: (c) => choices[pi * n + c]!.stop.done,
        }).then((r) => { results[pi] = r; });
      }));
    } catch (e) {
      ac.abort(); // the other prompts of this request stop too
      if (!stream) throw e;
      const err = toApiError(e);
      send(errorBody(err));
      reply.raw.end();
      return reply;
    }
    const promptTokens = plan.prompts.reduce((s, p) => s + p.ids.length, 0);
    const completionTokens = choices.reduce((s, c) => s + c.tokens, 0);
    const cached = results.reduce((s, r) => s + (r?.cachedTokens ?? 0), 0);
    const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens, prompt_tokens_details: { cached_tokens: cached } };
    if (stream) {
      if (b.stream_options?.include_usage) send({ id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created, model: o.modelId, choices: [], usage });
      if (!reply.raw.destroyed) reply.raw.end('data: [DONE]\n\n');
      return reply;
    }
    if (ac.signal.aborted) return reply; // nobody to answer
    return kind === 'chat'
      ? { id, object: 'chat.completion', created, model: o.modelId, system_fingerprint: null, choices: choices.map((c) => ({ index: c.index, message: { role: 'assistant', content: c.text }, logprobs: null, finish_reason: c.finish })), usage }
      : { id, object: 'text_completion', created, model: o.modelId, choices: choices.map((c) => ({ index: c.index, text: c.text, logprobs: null, finish_reason: c.finish })), usage };
  }

  return {
    app, engine, metrics, cache,
    async close(graceMs = 30_000) {
      closing = true;
      await engine.close(graceMs);
      await app.close();
      cache?.clear();
    },
  };
}

/** Any failure as an OpenAI error: validation -> 400 naming the field, limits -> 413/429, bugs -> 500. */
function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const fe = err as FastifyError & { validation?: { instancePath: string; keyword: string; params: Record<string, unknown>; message?: string }[] };
  if (fe.validation?.length) {
    const v = fe.validation[0]!;
    const path = v.instancePath.replace(/^\//, '').replaceAll('/', '.');
    if (v.keyword === 'additionalProperty' || v.keyword === 'additionalProperties') {
      const name = [path, String(v.params.additionalProperty)].filter(Boolean).join('.');
      return new ApiError(400, `Unrecognized request argument supplied: ${name}`, name, 'unknown_parameter');
    }
    if (v.keyword === 'required') {
      const name = [path, String(v.params.missingProperty)].filter(Boolean).join('.');
      return new ApiError(400, `Missing required parameter: '${name}'`, name, 'missing_required_parameter');
    }
    return new ApiError(400, `Invalid value for '${path || 'body'}': ${v.message ?? 'invalid'}`, path || null, 'invalid_value');
  }
  if (isMambaError(err)) {
    if (err.details['overloaded']) return new ApiError(429, err.message, null, 'rate_limit_exceeded', 'requests');
    if (err.code === 'TOKEN_OUT_OF_RANGE') return new ApiError(400, err.message, 'prompt', 'invalid_value');
    if (err.code === 'BAD_ARGUMENT') return new ApiError(400, err.message, null, 'invalid_value');
    if (err.code === 'UNSUPPORTED') return new ApiError(503, err.message, null, 'shutting_down', 'server_error');
    return new ApiError(500, err.message, null, err.code, 'server_error');
  }
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new ApiError(413, `the request body is larger than the server's limit (${fe.message})`, null, 'body_too_large');
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return new ApiError(fe.statusCode, fe.message, null, fe.code ?? null);
  return new ApiError(500, `internal error: ${(err as Error)?.message ?? String(err)}`, null, 'internal_error', 'server_error');
}
