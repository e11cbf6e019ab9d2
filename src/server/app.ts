import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { fail } from '../errors.js';
import type { Model } from '../model.js';
import { ApiError, toApiError } from './api-error.js';
import { ChatTemplate } from './chat-template.js';
import { Engine } from './engine.js';
import { ServerMetrics } from './metrics.js';
import { modelFingerprint, PromptCache, type SnapshotStore } from './prompt-cache.js';
import { PrefixTokenizer } from './prefix-tokenizer.js';
import { chatPlan, completionPlan } from './requests.js';
import { respond } from './respond.js';
import { chatSchema, completionSchema, type ChatBody, type CompletionBody } from './schemas.js';

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
  maxBodyBytes: 1 << 20,
  maxPromptTokens: 8192,
  maxTokensLimit: 4096,
  maxRunning: 16,
  maxQueued: 64,
  prefillChunk: 64,
  snapshotEvery: 256,
  cacheBytes: 256 << 20,
} as const;

export interface Server {
  app: FastifyInstance;
  engine: Engine;
  metrics: ServerMetrics;
  cache: PromptCache | undefined;
  /** Stops taking requests, lets running ones finish for up to graceMs (then cancels them), closes. */
  close(graceMs?: number): Promise<void>;
}

export async function createServer(o: ServerOptions): Promise<Server> {
  const { model } = o;
  const lim: Record<keyof typeof DEFAULTS, number> = { ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) lim[k] = o[k] ?? DEFAULTS[k];
  const tk =
    model.tokenizer ??
    fail('BAD_ARGUMENT', `${model.source} has no tokenizer.json: the server needs one to turn text into tokens`);
  const template = o.chatTemplate ?? ChatTemplate.fallback();
  const metrics = new ServerMetrics();
  const log = o.log ?? ((m: string) => process.stderr.write(`mamba-ts serve: ${m}\n`));
  const fingerprint = await modelFingerprint(model.lm);
  const cacheOptions = { maxBytes: lim.cacheBytes, store: o.store, fingerprint, log };
  const cache = lim.cacheBytes > 0 ? new PromptCache(model.lm, cacheOptions) : undefined;
  const engine = new Engine(model.lm, {
    maxRunning: lim.maxRunning,
    maxQueued: lim.maxQueued,
    prefillChunk: lim.prefillChunk,
    snapshotEvery: lim.snapshotEvery,
    cache,
    observer: metrics,
  });
  const configEos = model.config.eosTokenId !== undefined ? [model.config.eosTokenId] : [];
  const eos = tk.stopTokenIds.length ? tk.stopTokenIds : configEos;
  // ids the tokenizer cannot decode (vocabulary padding rows of the embedding) are never sampled
  const V = model.lm.vocabSize;
  const suppress = Array.from({ length: Math.max(0, V - tk.vocabSize) }, (_, i) => tk.vocabSize + i);
  let closing = false;
  // a chat's history is tokenized again every turn: from the last turns' ids where they agree
  const prefixTokenizer = new PrefixTokenizer(tk);
  const encode = (text: string): number[] => prefixTokenizer.encode(text);

  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: lim.maxBodyBytes,
    // close() runs after the engine has drained: what is left are idle keep-alive sockets, closed at once
    forceCloseConnections: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
  });

  app.addHook('onRequest', async (req) => {
    if (!o.apiKey || !req.url.startsWith('/v1/')) return;
    if (req.headers.authorization === `Bearer ${o.apiKey}`) return;
    const msg = 'Incorrect or missing API key: send "Authorization: Bearer <key>"';
    throw new ApiError(401, msg, null, 'invalid_api_key');
  });

  app.setErrorHandler((err: FastifyError | ApiError, req, reply) => {
    const e = toApiError(err);
    if (e.status >= 500) req.log.error(err);
    if (e.status === 429) void reply.header('retry-after', '1');
    void reply.code(e.status).send(e.body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(new ApiError(404, `no route ${req.method} ${req.url}`, null, 'not_found').body);
  });
  app.addHook('onResponse', async (req, reply) => {
    const endpoint = req.routeOptions.url;
    if (endpoint?.startsWith('/v1/')) metrics.requests.inc({ endpoint, status: String(reply.statusCode) });
  });

  app.get('/health', async (_req, reply) => {
    if (closing) return reply.code(503).send({ status: 'shutting_down' });
    const cached = cache ? { entries: cache.size, bytes: cache.bytes } : null;
    return { status: 'ok', model: o.modelId, running: engine.rows, queued: engine.queued, cache: cached };
  });
  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.get('/v1/models', async () => ({
    object: 'list',
    data: [{ id: o.modelId, object: 'model', created: 0, owned_by: 'mamba-ts' }],
  }));

  const limits = { modelId: o.modelId, ...lim, vocabSize: model.lm.vocabSize };
  const cx = { engine, metrics, tokenizer: tk, modelId: o.modelId, eos, suppress };
  const admit = (requests: number): void => {
    if (closing) throw new ApiError(503, 'the server is shutting down', null, 'shutting_down', 'server_error');
    if (!engine.canTake(requests)) {
      const msg = `the server is busy: ${engine.queued} requests are waiting; retry later`;
      throw new ApiError(429, msg, null, 'rate_limit_exceeded', 'requests');
    }
  };
  const completions = { schema: { body: completionSchema } };
  app.post<{ Body: CompletionBody }>('/v1/completions', completions, async (req, reply) => {
    const plan = completionPlan(req.body, tk, limits, encode);
    admit(plan.prompts.length);
    return respond(cx, plan, reply);
  });
  app.post<{ Body: ChatBody }>('/v1/chat/completions', { schema: { body: chatSchema } }, async (req, reply) => {
    const plan = chatPlan(req.body, tk, template, limits, encode);
    admit(1);
    return respond(cx, plan, reply);
  });

  return {
    app,
    engine,
    metrics,
    cache,
    async close(graceMs = 30_000) {
      closing = true;
      await engine.close(graceMs);
      await app.close();
      engine.dispose();
      cache?.clear();
    },
  };
}
