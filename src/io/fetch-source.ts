/**
 * A ByteSource over a URL, read with HTTP Range requests (RFC 9110 §14), so a browser can read a
 * checkpoint's header and then one tensor at a time instead of downloading the whole file first.
 * Browser-safe; also works in Node 20 (global fetch).
 */
import { fail } from '../errors.js';
import { beginRead, type ByteSource } from './byte-source.js';

export interface FetchSourceOptions {
  /** Extra headers sent with every request, e.g. `{ Authorization: 'Bearer hf_…' }` for gated repos. */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * Where the server ignores Range (answers 200 with the whole file, as `python3 -m http.server`
   * does): 'fail' (the default) refuses; 'download' keeps that one whole answer in memory and serves
   * every read from it, so such a server costs one full download and no more.
   */
  readonly noRange?: 'fail' | 'download';
  /** The fetch to use (default the global one): e.g. one that answers from the Cache API. */
  readonly fetch?: typeof fetch;
}

function reason(e: unknown): string {
  if (e instanceof Error) {
    const cause = e.cause instanceof Error ? `: ${e.cause.message}` : '';
    return `${e.message}${cause}`;
  }
  return String(e);
}

async function request(url: string, init: RequestInit, f: typeof fetch = fetch): Promise<Response> {
  try {
    return await f(url, init);
  } catch (e) {
    return fail('NETWORK', `could not fetch ${url}: ${reason(e)}`, { url });
  }
}

function failStatus(res: Response, url: string): never {
  if (res.status === 404 || res.status === 410)
    fail('FILE_NOT_FOUND', `${url} not found (HTTP ${res.status})`, { url, status: res.status });
  return fail('NETWORK', `${url}: HTTP ${res.status} ${res.statusText}`.trimEnd(), { url, status: res.status });
}

function noRangeSupport(url: string): never {
  return fail(
    'UNSUPPORTED',
    `${url}: the server ignored the HTTP Range header; reading tensors one at a time needs a server that supports range requests`,
    { url },
  );
}

/**
 * The resource's size: Content-Length of a HEAD, else the total in the Content-Range of a one-byte
 * range request. Where the server ignores Range and `whole` is given, that probe's full answer is
 * read into memory and `whole.bytes` set (the size is then its length).
 */
async function remoteSize(
  url: string,
  headers: Readonly<Record<string, string>>,
  f: typeof fetch,
  whole?: { bytes?: Uint8Array | undefined },
): Promise<number> {
  const head = await request(url, { method: 'HEAD', headers }, f);
  if (head.ok) {
    const length = head.headers.get('content-length');
    // A compressed representation's length is not the file's length, and ranges would address it.
    if (length !== null && /^\d+$/.test(length) && head.headers.get('content-encoding') === null) return Number(length);
  } else if (head.status === 404 || head.status === 410) {
    failStatus(head, url);
  }
  // HEAD refused or incomplete (e.g. URLs presigned for GET only): ask for the first byte instead.
  const probe = await request(url, { headers: { ...headers, Range: 'bytes=0-0' } }, f);
  if (probe.status === 200 && whole) {
    whole.bytes = await wholeBody(probe, url);
    return whole.bytes.byteLength;
  }
  await probe.body?.cancel();
  if (probe.status === 206 || probe.status === 416) {
    // `bytes 0-0/1234`, or `bytes */0` for an empty file (416: not satisfiable).
    const total = /\/(\d+)\s*$/.exec(probe.headers.get('content-range') ?? '');
    if (total) return Number(total[1]);
  }
  if (probe.status === 200) noRangeSupport(url);
  if (!probe.ok) failStatus(probe, url);
  return fail(
    'NETWORK',
    `${url}: could not learn the file size (no Content-Length on HEAD, no Content-Range on a range request)`,
    { url },
  );
}

/** Streams a response body into `out`, which must end up exactly full. */
async function readBodyInto(res: Response, out: Uint8Array, url: string, offset: number): Promise<void> {
  let filled = 0;
  if (res.body !== null) {
    const reader = res.body.getReader();
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (e) {
        return fail(
          'NETWORK',
          `${url}: download failed after ${filled} of ${out.byteLength} bytes at offset ${offset}: ${reason(e)}`,
          { url, offset },
        );
      }
      if (chunk.done) break;
      if (filled + chunk.value.byteLength > out.byteLength) {
        await reader.cancel();
        fail('NETWORK', `${url}: the server sent more than the ${out.byteLength} bytes asked for at offset ${offset}`, {
          url,
          offset,
        });
      }
      out.set(chunk.value, filled);
      filled += chunk.value.byteLength;
    }
  }
  if (filled !== out.byteLength) {
    fail('NETWORK', `${url}: the connection ended after ${filled} of ${out.byteLength} bytes at offset ${offset}`, {
      url,
      offset,
    });
  }
}

/** A whole 200 answer, read to the end. */
async function wholeBody(res: Response, url: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await res.arrayBuffer());
  } catch (e) {
    return fail('NETWORK', `${url}: download failed: ${reason(e)}`, { url });
  }
}

export async function fetchSource(url: string | URL, options: FetchSourceOptions = {}): Promise<ByteSource> {
  const href = String(url);
  const headers = options.headers ?? {};
  const f = options.fetch ?? ((u: string | URL | Request, i?: RequestInit) => fetch(u, i));
  const download = options.noRange === 'download';
  const whole: { bytes?: Uint8Array | undefined } = {};
  const size = await remoteSize(href, headers, f, download ? whole : undefined);
  let closed = false;
  const source: ByteSource = {
    size,
    description: href,
    async read(offset, length, dest) {
      const out = beginRead(source, closed, offset, length, dest);
      if (length === 0) return out;
      if (whole.bytes) {
        out.set(whole.bytes.subarray(offset, offset + length));
        return out;
      }
      const last = offset + length - 1;
      const res = await request(href, { headers: { ...headers, Range: `bytes=${offset}-${last}` } }, f);
      if (res.status === 200) {
        // A full-body answer is only what we asked for when we asked for the whole file.
        if (download && !(offset === 0 && length === size)) {
          whole.bytes = await wholeBody(res, href);
          if (whole.bytes.byteLength !== size)
            fail('NETWORK', `${href}: expected ${size} bytes, the server sent ${whole.bytes.byteLength}`, {
              url: href,
            });
          out.set(whole.bytes.subarray(offset, offset + length));
          return out;
        }
        if (offset !== 0 || length !== size) {
          await res.body?.cancel();
          noRangeSupport(href);
        }
      } else if (res.status === 206) {
        const range = /^bytes (\d+)-(\d+)\//.exec(res.headers.get('content-range') ?? '');
        if (range && (Number(range[1]) !== offset || Number(range[2]) !== last)) {
          await res.body?.cancel();
          fail('NETWORK', `${href}: asked for bytes ${offset}-${last}, the server sent ${range[1]}-${range[2]}`, {
            url: href,
            offset,
          });
        }
      } else {
        await res.body?.cancel();
        failStatus(res, href);
      }
      await readBodyInto(res, out, href, offset);
      return out;
    },
    async close() {
      closed = true;
      whole.bytes = undefined;
    },
  };
  return source;
}
