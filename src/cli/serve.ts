import { fail } from '../errors.js';
import { resolveModel } from '../io/hub.js';
import { DEFAULT_MODEL_DIR } from '../node/load.js';
import { createServer, DEFAULTS } from '../server/app.js';
import { ChatTemplate } from '../server/chat-template.js';
import { RedisSnapshotStore } from '../server/redis-store.js';
import { HELP_OPTION, helpText, parse, type CommandSpec } from './args.js';
import { MODEL_OPTIONS, openModel } from './common.js';

export const SERVE = {
  name: 'serve',
  summary: 'an OpenAI-compatible HTTP server (continuous batching, prompt cache)',
  usage: ['mamba-ts serve [--model <dir|org/name>] [--host 127.0.0.1] [--port 8080] [options]'],
  options: {
    ...MODEL_OPTIONS,
    host: {
      type: 'string',
      nonEmpty: true,
      default: '127.0.0.1',
      help: 'address to listen on (127.0.0.1: this machine only)',
    },
    port: { type: 'int', min: 0, max: 65535, default: 8080, help: 'port (0 picks a free one)' },
    'api-key': {
      type: 'string',
      nonEmpty: true,
      defaultText: 'MAMBA_TS_API_KEY, else none',
      help: 'require "Authorization: Bearer <key>" on /v1/*',
    },
    'served-model-name': {
      type: 'string',
      nonEmpty: true,
      defaultText: "the model's directory name",
      help: 'the model name clients pass',
    },
    'max-running': {
      type: 'int',
      min: 1,
      max: 1024,
      default: DEFAULTS.maxRunning,
      help: 'sequences decoding at once, the batch',
    },
    'max-queued': {
      type: 'int',
      min: 0,
      default: DEFAULTS.maxQueued,
      help: 'requests waiting for a batch row; more get 429',
    },
    'max-prompt-tokens': { type: 'int', min: 1, default: DEFAULTS.maxPromptTokens, help: 'longest prompt accepted' },
    'max-tokens': { type: 'int', min: 1, default: DEFAULTS.maxTokensLimit, help: 'largest max_tokens accepted' },
    'max-body-bytes': { type: 'int', min: 1024, default: DEFAULTS.maxBodyBytes, help: 'largest request body' },
    'prefill-chunk': {
      type: 'int',
      min: 1,
      default: DEFAULTS.prefillChunk,
      help: "prompt tokens per prefill pass: bounds how long a new prompt holds up the others' next token",
    },
    'cache-mb': {
      type: 'int',
      min: 0,
      default: DEFAULTS.cacheBytes / 2 ** 20,
      help: 'in-memory prompt cache in MiB, 0 = off',
    },
    'cache-every': {
      type: 'int',
      min: 0,
      default: DEFAULTS.snapshotEvery,
      help: 'also snapshot every n tokens of a long prompt',
    },
    cache: {
      type: 'string',
      arg: '<redis://host:port>',
      help: 'share prompt snapshots with other replicas through Redis',
    },
    'cache-ttl': { type: 'int', min: 1, default: 86_400, help: 'seconds Redis keeps a snapshot' },
    'shutdown-timeout': {
      type: 'number',
      min: 0,
      default: 30,
      help: 'on SIGTERM, seconds running requests may finish',
    },
    log: { type: 'boolean', help: 'log every request (JSON lines on stdout)' },
    ...HELP_OPTION,
  },
  footer:
    'Endpoints: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (streaming with "stream":\n' +
    'true), GET /health, GET /metrics (Prometheus).',
} as const satisfies CommandSpec;

export async function serveCommand(argv: string[]): Promise<void> {
  const { help, values: v } = parse(SERVE, argv);
  if (help) {
    process.stdout.write(helpText(SERVE));
    return;
  }
  const { port, host } = v;
  const cacheUrl = v.cache;
  if (cacheUrl !== undefined && !/^rediss?:\/\//.test(cacheUrl)) {
    fail('BAD_ARGUMENT', `--cache must be a redis:// or rediss:// URL, got "${cacheUrl}"`);
  }
  const log = (m: string): void => {
    process.stderr.write(`mamba-ts serve: ${m}\n`);
  };
  const { model } = await openModel(v);
  const source = typeof v.model === 'string' ? v.model : DEFAULT_MODEL_DIR;
  const dir = await resolveModel(source);
  const store = cacheUrl ? new RedisSnapshotStore(cacheUrl, v['cache-ttl'], log) : undefined;
  const defaultName = source === DEFAULT_MODEL_DIR ? 'mamba-ts-default' : source.replace(/\/+$/, '').split('/').pop()!;
  const server = await createServer({
    model,
    log,
    store,
    modelId: v['served-model-name'] ?? defaultName,
    chatTemplate: await ChatTemplate.load(dir),
    apiKey: v['api-key'] ?? process.env.MAMBA_TS_API_KEY,
    maxRunning: v['max-running'],
    maxQueued: v['max-queued'],
    maxPromptTokens: v['max-prompt-tokens'],
    maxTokensLimit: v['max-tokens'],
    maxBodyBytes: v['max-body-bytes'],
    prefillChunk: v['prefill-chunk'],
    snapshotEvery: v['cache-every'],
    cacheBytes: v['cache-mb'] * 2 ** 20,
    logger: v.log === true,
  });
  const address = await server.app.listen({ port, host });
  const local = host === '127.0.0.1' || host === 'localhost' ? ' (this machine only; --host 0.0.0.0 to open it)' : '';
  log(`serving ${model.source} (${model.lm.backend.name}) at ${address}/v1${local}`);
  const graceMs = v['shutdown-timeout'] * 1000;
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      log(`${sig}: finishing running requests (at most ${graceMs / 1000} s), then stopping`);
      void server
        .close(graceMs)
        .then(() => store?.close())
        .then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
