import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize } from 'node:path';

/**
 * Static servers for the browser tests, with the two behaviours that matter to a page loading a
 * model: honouring HTTP Range or not (`python3 -m http.server` does not: it answers 200 with the
 * whole file), and a log of every request, so tests can count downloads.
 */
export const TYPES: Record<string, string> = {
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.json': 'application/json',
  '.html': 'text/html',
  '.css': 'text/css',
  '.png': 'image/png',
  '.safetensors': 'application/octet-stream',
  '.map': 'application/json',
};

export interface Served {
  server: Server;
  url: string;
  /** `METHOD path status` of every request, in order. */
  log: string[];
  close(): Promise<void>;
}

export interface ServeOptions {
  /** URL path prefix -> directory; the longest matching prefix wins. */
  mounts: Record<string, string>;
  /** Answer 200 with the whole file to Range requests, as python3 -m http.server does. */
  ignoreRange?: boolean;
  /** Extra headers on every answer (e.g. COOP/COEP). */
  headers?: Record<string, string>;
  /** Pages served as they are, by path. */
  pages?: Record<string, string>;
}

export async function serve(o: ServeOptions): Promise<Served> {
  const log: string[] = [];
  const prefixes = Object.keys(o.mounts).sort((a, b) => b.length - a.length);
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    const answer = (status: number, headers: Record<string, string | number>, body?: Buffer | string): void => {
      log.push(`${req.method} ${path} ${status}`);
      res.writeHead(status, { ...o.headers, ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const page = o.pages?.[path];
    if (page !== undefined) return answer(200, { 'content-type': 'text/html' }, page);
    const prefix = prefixes.find((p) => path.startsWith(p));
    let file = prefix === undefined ? '' : join(o.mounts[prefix], path.slice(prefix.length));
    if (file && existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!prefix || file.includes('..') || !existsSync(file) || !statSync(file).isFile()) return answer(404, {});
    const body = readFileSync(file);
    const type = TYPES[extname(file)] ?? 'application/octet-stream';
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (range && !o.ignoreRange) {
      const a = Number(range[1]);
      const b = Math.min(Number(range[2]), body.length - 1);
      return answer(
        206,
        { 'content-type': type, 'content-range': `bytes ${a}-${b}/${body.length}`, 'content-length': b - a + 1 },
        body.subarray(a, b + 1),
      );
    }
    answer(200, { 'content-type': type, 'content-length': body.length }, body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  return { server, url, log, close: () => new Promise<void>((r) => server.close(() => r())) };
}
