import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail } from '../errors.js';
import { resolveModel } from '../io/hub.js';
import { HELP_OPTION, helpText, parse, type CommandSpec } from './args.js';

export const WEB = {
  name: 'web',
  summary: "serve the web app (playground and the model's inside) on 127.0.0.1",
  usage: ['mamba-ts web [--model <dir|org/name[@rev]>] [--port N]'],
  options: {
    model: {
      type: 'string',
      short: 'm',
      arg: '<dir|org/name[@rev]>',
      nonEmpty: true,
      defaultText: 'the model shipped with mamba-ts',
      help: 'the model the page starts with (a hub id is downloaded first)',
    },
    port: { type: 'int', min: 0, max: 65535, default: 8080, help: 'port (0 picks a free one)' },
    ...HELP_OPTION,
  },
  footer:
    'Serves the built app (npm run build:web) with the cross-origin isolation headers that WebAssembly\n' +
    'threads need (COOP same-origin, COEP require-corp) and HTTP Range. Opens nothing: visit the URL it\n' +
    'prints.',
} as const satisfies CommandSpec;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

const ISOLATION = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
};

/** dist/web beside this file's dist/src/cli/. */
export const APP_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

/** Answers one request from `mounts` (URL prefix -> folder), honouring a single HTTP Range. */
function answer(
  req: IncomingMessage,
  res: ServerResponse,
  mounts: [string, string][],
  config: string | undefined,
): void {
  const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replaceAll('\\', '/');
  const send = (status: number, headers: Record<string, string | number>, body?: string) => {
    res.writeHead(status, { ...ISOLATION, ...headers });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { allow: 'GET, HEAD' });
  if (path === '/app-config.json' && config !== undefined) return send(200, { 'content-type': TYPES['.json'] }, config);
  const [prefix, dir] = mounts.find(([p]) => path.startsWith(p)) ?? ['', ''];
  let file = resolve(dir, `.${path.slice(prefix.length - 1)}`);
  if (!dir || !(file + sep).startsWith(resolve(dir) + sep)) return send(404, {}, 'not found');
  if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
  if (!existsSync(file) || !statSync(file).isFile()) return send(404, {}, 'not found');
  const size = statSync(file).size;
  const type = TYPES[extname(file)] ?? 'application/octet-stream';
  const range = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ''));
  if (range && (range[1] !== '' || range[2] !== '')) {
    const a = range[1] === '' ? Math.max(0, size - Number(range[2])) : Number(range[1]);
    const b = range[1] === '' || range[2] === '' ? size - 1 : Math.min(Number(range[2]), size - 1);
    if (a > b || a >= size) return send(416, { 'content-range': `bytes */${size}` });
    res.writeHead(206, {
      ...ISOLATION,
      'content-type': type,
      'content-length': b - a + 1,
      'content-range': `bytes ${a}-${b}/${size}`,
      'accept-ranges': 'bytes',
    });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file, { start: a, end: b }).pipe(res);
    return;
  }
  res.writeHead(200, { ...ISOLATION, 'content-type': type, 'content-length': size, 'accept-ranges': 'bytes' });
  if (req.method === 'HEAD') return void res.end();
  createReadStream(file).pipe(res);
}

export async function webCommand(argv: string[]): Promise<void> {
  const { help, values: v } = parse(WEB, argv);
  if (help) {
    process.stdout.write(helpText(WEB));
    return;
  }
  const port = v.port;
  if (!existsSync(join(APP_DIR, 'index.html')))
    fail('FILE_NOT_FOUND', `web: the app is not built (${APP_DIR} has no index.html); run npm run build:web`);
  const mounts: [string, string][] = [];
  let config: string | undefined; // undefined: the build's own app-config.json
  if (typeof v.model === 'string') {
    const dir = await resolveModel(v.model);
    if (!existsSync(join(dir, 'config.json'))) fail('FILE_NOT_FOUND', `web: ${dir} has no config.json`);
    mounts.push(['/models/custom/', dir]);
    config = JSON.stringify({ defaultModel: './models/custom/', name: v.model });
  }
  // the page's hub ids go where the CLI's do: a mirror named by HF_ENDPOINT
  const hubEndpoint = process.env.HF_ENDPOINT?.trim();
  if (hubEndpoint) config = JSON.stringify({ ...(config ? JSON.parse(config) : {}), hubEndpoint });
  mounts.push(['/', APP_DIR]);
  const server = createServer((req, res) => {
    try {
      answer(req, res, mounts, config);
    } catch (e) {
      res.writeHead(500);
      res.end(String(e));
    }
  });
  await new Promise<void>((ok, bad) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      bad(
        e.code === 'EADDRINUSE'
          ? new Error(`web: port ${port} is in use; pass --port N (or --port 0 for a free one)`)
          : e,
      ),
    );
    server.listen(port, '127.0.0.1', () => ok());
  }).catch((e: Error) => fail('BAD_ARGUMENT', e.message));
  const addr = server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : port}/`;
  process.stdout.write(`mamba-ts web: serving the app on ${url} (Ctrl-C stops)\n`);
  // stay up until the process is stopped: main() must not exit while the server listens
  await new Promise<void>((done) => {
    const stop = () => server.close(() => done());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
