/**
 * A fetch for model files that keeps every file it downloads in the Cache API, so a reload reads
 * weights from the browser instead of the network. The library reads checkpoints with HEAD and Range
 * requests; this answers both from the cached whole file (HEAD: its length; Range: a slice), so the
 * library needs no special path for cached models. Files a server does not have (404) are not cached.
 */
import { CACHE_NAME } from './protocol.js';

export interface CachedFetch {
  fetch: typeof fetch;
  /** Bytes read from the network so far. */
  downloaded(): number;
}

export function cachedFetch(onProgress: (file: string, loaded: number, total: number) => void): CachedFetch {
  let downloaded = 0;
  const pending = new Map<string, Promise<Blob | number>>();
  const cacheP =
    typeof caches === 'undefined' ? Promise.resolve(undefined) : caches.open(CACHE_NAME).catch(() => undefined);

  /** The whole file, from the cache or downloaded into it; or the HTTP status of a failed download. */
  async function whole(url: string, init: RequestInit | undefined): Promise<Blob | number> {
    const cache = await cacheP;
    const hit = await cache?.match(url);
    if (hit) return hit.blob();
    const res = await fetch(url, { headers: init?.headers ?? {} });
    if (!res.ok) {
      await res.body?.cancel();
      return res.status;
    }
    const total = Number(res.headers.get('content-length') ?? 0);
    const file = url.split('/').pop() ?? url;
    const parts: Uint8Array[] = [];
    let loaded = 0;
    const reader = res.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      loaded += value.byteLength;
      downloaded += value.byteLength;
      onProgress(file, loaded, Math.max(total, loaded));
    }
    const blob = new Blob(parts as BlobPart[], { type: res.headers.get('content-type') ?? 'application/octet-stream' });
    await cache?.put(url, new Response(blob, { headers: { 'content-length': String(blob.size) } })).catch(() => {});
    return blob;
  }

  const f = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    let p = pending.get(url);
    if (!p) {
      p = whole(url, init);
      pending.set(url, p);
    }
    const blob = await p;
    if (typeof blob === 'number') {
      pending.delete(url); // not cached: asked again next time (404 for optional files is expected)
      return new Response(null, { status: blob, statusText: `HTTP ${blob}` });
    }
    const headers = new Headers(init?.headers);
    if (init?.method === 'HEAD') return new Response(null, { headers: { 'content-length': String(blob.size) } });
    const range = /^bytes=(\d+)-(\d+)$/.exec(headers.get('range') ?? '');
    if (!range) return new Response(blob, { headers: { 'content-length': String(blob.size) } });
    const a = Number(range[1]);
    const b = Math.min(Number(range[2]), blob.size - 1);
    return new Response(blob.slice(a, b + 1), {
      status: 206,
      headers: { 'content-range': `bytes ${a}-${b}/${blob.size}`, 'content-length': String(b - a + 1) },
    });
  };
  return { fetch: f as typeof fetch, downloaded: () => downloaded };
}
