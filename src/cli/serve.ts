import { fail } from '../errors.js';
import { resolveModel } from '../io/hub.js';
import { DEFAULT_MODEL_DIR } from '../node/load.js';
import { createServer, DEFAULTS } from '../server/app.js';
import { ChatTemplate } from '../server/chat-template.js';
import { RedisSnapshotStore } from '../server/redis-store.js';
import { num, parse } from './args.js';
import { MODEL_HELP, MODEL_OPTIONS, openModel } from './common.js';

export const SERVE_HELP = `mamba-ts serve: an OpenAI-compatible HTTP server (continuous batching, prompt cache)

Usage: mamba-ts serve [--model <dir|org/name>] [--host 127.0.0.1] [--port 8080] [options]

Endpoints: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (streaming with "stream":
true), GET /health, GET /metrics (Prometheus).

${MODEL_HELP}
  --host <addr>                     address to listen on (default 127.0.0.1: this machine only)
  --port <n>                        port (default 8080; 0 picks a free one)
  --api-key <key>                   require "Authorization: Bearer <key>" on /v1/* (or MAMBA_TS_API_KEY)
  --served-model-name <name>        the model name clients pass (default: the model's directory name)
  --max-running <n>                 sequences decoding at once, the batch (default ${DEFAULTS.maxRunning})
  --max-queued <n>                  requests waiting for a batch row; more get 429 (default ${DEFAULTS.maxQueued})
  --max-prompt-tokens <n>           longest prompt accepted (default ${DEFAULTS.maxPromptTokens})
  --max-tokens <n>                  largest max_tokens accepted (default ${DEFAULTS.maxTokensLimit})
  --max-body-bytes <n>              largest request body (default ${DEFAULTS.maxBodyBytes})
  --prefill-chunk <n>               prompt tokens per prefill pass: bounds how long a new prompt holds
                                    up the others' next token (default ${DEFAULTS.prefillChunk})
  --cache-mb <n>                    in-memory prompt cache size in MiB, 0 = off (default ${DEFAULTS.cacheBytes >> 20})
  --cache-every <n>                 also snapshot every n tokens of a long prompt (default ${DEFAULTS.snapshotEvery})
  --cache <redis://host:port>       share prompt snapshots with other replicas through Redis
  --cache-ttl <seconds>             how long Redis keeps a snapshot (default 86400)
  --shutdown-timeout <seconds>      on SIGTERM, how long running requests may finish (default 30)
  --log                             log every request (JSON lines on stdout)
  --help, -h                        this help
`;

export async function serveCommand(argv: string[]): Promise<void> {
  const { values: v } = parse('serve', argv, {
    ...MODEL_OPTIONS,
    host: { type: 'string' },
    port: { type: 'string' },
    'api-key': { type: 'string' },
    'served-model-name': { type: 'string' },
    'max-running': { type: 'string' },
    'max-queued': { type: 'string' },
    'max-prompt-tokens': { type: 'string' },
    'max-tokens': { type: 'string' },
    'max-body-bytes': { type: 'string' },
    'prefill-chunk': { type: 'string' },
    'cache-mb': { type: 'string' },
    'cache-every': { type: 'string' },
    cache: { type: 'string' },
    'cache-ttl': { type: 'string' },
    'shutdown-timeout': { type: 'string' },
    log: { type: 'boolean' },
  });
  if (v.help) { process.stdout.write(SERVE_HELP); return; }
  const int = (k: string, min: number, max = 2 ** 31): number | undefined => num(v[k], k, { int: true, min, max });
  const port = int('port', 0, 65535) ?? 8080;
  const host = typeof v.host === 'string' ? v.host : '127.0.0.1';
  const cacheUrl = v.cache as string | undefined;
  if (cacheUrl !== undefined && !/^rediss?:\/\//.test(cacheUrl)) {
    fail('BAD_ARGUMENT', `--cache must be a redis:// or rediss:// URL, got "${cacheUrl}"`);
  }
  const log = (m: string): void => { process.stderr.write(`mamba-ts serve: ${m}\n`); };
  const { model } = await openModel(v);
  const source = typeof v.model === 'string' ? v.model : DEFAULT_MODEL_DIR;
  const dir = await resolveModel(source);
  const store = cacheUrl ? new RedisSnapshotStore(cacheUrl, int('cache-ttl', 1) ?? 86_400, log) : undefined;
  const cacheMb = int('cache-mb', 0);
  const defaultName = source === DEFAULT_MODEL_DIR ? 'mamba-ts-default' : source.replace(/\/+$/, '').split('/').pop()!;
  const server = await createServer({
    model, log, store,
    modelId: typeof v['served-model-name'] === 'string' ? v['served-model-name'] : defaultName,
    chatTemplate: await ChatTemplate.load(dir),
    apiKey: (v['api-key'] as string | undefined) ?? process.env.MAMBA_TS_API_KEY,
    maxRunning: int('max-running', 1, 1024), maxQueued: int('max-queued', 0),
    maxPromptTokens: int('max-prompt-tokens', 1), maxTokensLimit: int('max-tokens', 1),
    maxBodyBytes: int('max-body-bytes', 1024), prefillChunk: int('prefill-chunk', 1),
    snapshotEvery: int('cache-every', 0), cacheBytes: cacheMb === undefined ? undefined : cacheMb * 2 ** 20,
    logger: v.log === true,
  });
  const address = await server.app.listen({ port, host });
  const local = host === '127.0.0.1' || host === 'localhost' ? ' (this machine only; --host 0.0.0.0 to open it)' : '';
  log(`serving ${model.source} (${model.lm.backend.name}) at ${address}/v1${local}`);
  const graceMs = (num(v['shutdown-timeout'], 'shutdown-timeout', { min: 0 }) ?? 30) * 1000;
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      log(`${sig}: finishing running requests (at most ${graceMs / 1000} s), then stopping`);
      void server.close(graceMs).then(() => store?.close()).then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
