/**
 * A Hugging Face hub on 127.0.0.1 for tests: the URL layout and headers of huggingface.co's resolve
 * route, as huggingface_hub's file_download.py reads them, plus a separate "CDN" origin for LFS files.
 *
 * - HEAD/GET /{org}/{name}/resolve/{revision}/{file}: X-Repo-Commit, ETag (the git blob sha1),
 *   Content-Length; for LFS files a 302 to the CDN with X-Linked-Etag (sha256) and X-Linked-Size,
 *   the ETag then being the pointer file's sha1, as on the real hub.
 * - 404 with X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound (+ X-Repo-Commit);
 *   private repos answer 401 RepoNotFound without their token, gated ones 403 GatedRepo.
 * - a renamed repo answers 307 with a relative Location, as the hub does.
 * - Range requests (206, 416), and switches: ignore ranges, cut bodies after K bytes (socket closed),
 *   slow bodies, a hub that never answers; every request is recorded.
 * - Misbehaviour switches, for the downloader's defences (issue 13): sizes announced wrong, a body
 *   that never ends, a drip of bytes, sequences of 429/503 (with Retry-After), bodies that do not
 *   match their etag, a per-file X-Repo-Commit of another commit.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeFile {
  content: Uint8Array | string;
  /** Stored with Git LFS: served through the CDN, named by its sha256. */
  lfs?: boolean;
}

export interface FakeRepoOptions {
  files: Record<string, Uint8Array | string | FakeFile>;
  /** Branch or tag pointing at this commit (default main). */
  revision?: string;
  /** The commit sha (default: a hash of the contents). */
  commit?: string;
  /** Private: readable only with `Authorization: Bearer <token>`; others get 401 RepoNotFound. */
  token?: string;
  /** With `token`: answer 403 GatedRepo instead (a gated repo whose terms were not accepted). */
  gated?: boolean;
}

export interface RecordedRequest {
  server: 'hub' | 'cdn';
  method: string;
  path: string;
  range: string | undefined;
  authorization: string | undefined;
}

interface StoredFile {
  data: Buffer;
  lfs: boolean;
  gitSha1: string;
  sha256: string;
}

interface Repo {
  commits: Map<string, Map<string, StoredFile>>;
  refs: Map<string, string>;
  token: string | undefined;
  gated: boolean;
}

const CHUNK = 16 * 1024;

/** One request answered with an error status instead of its file. */
export interface FakeFailure {
  status: number;
  /** Sent as Retry-After (seconds or an HTTP date). */
  retryAfter?: string;
}

export class FakeHub {
  /** The hub's origin, e.g. http://127.0.0.1:40123 (use as HF_ENDPOINT). */
  url = '';
  /** The CDN's origin (another port, so another origin). */
  cdnUrl = '';
  readonly requests: RecordedRequest[] = [];
  /** Cut each of the next `failTransfers` file bodies after this many bytes by closing the socket. */
  failAfterBytes: number | undefined = undefined;
  failTransfers = Infinity;
  /** Answer ranged GETs with the whole file (200), as some servers do. */
  ignoreRange = false;
  /** Pause between 16 kB chunks of a body, so that transfers overlap in concurrency tests. */
  chunkDelayMs = 0;
  /** Never answer requests to the hub origin (a hub that hangs). */
  hang = false;
  /** Added to every size the hub's HEAD announces (X-Linked-Size, Content-Length). */
  sizeDelta = 0;
  /**
   * The GET lies about the size too: with sizeDelta > 0 its Content-Length is too big and the socket
   * is closed after the real bytes; with sizeDelta < 0 the body is sent chunked (no length), longer
   * than announced.
   */
  sizeDeltaInGet = false;
  /** GET bodies (hub and CDN) never end: chunked, random bytes until the client goes away. */
  endlessBody = false;
  /** GET bodies come `bytes` at a time, one piece every `everyMs` (a server that drips). */
  drip: { bytes: number; everyMs: number } | undefined = undefined;
  /** The next requests to the hub origin are answered with these statuses, in order (then normally). */
  readonly hubFailures: FakeFailure[] = [];
  /** The same for the CDN origin. */
  readonly cdnFailures: FakeFailure[] = [];
  /** Every request to the hub origin answers this status (a hub that is down), e.g. 503. */
  hubStatus: number | undefined = undefined;
  /** When set, sizeDelta, endlessBody and drip apply to these files only (repo paths). */
  misbehavingFiles: Set<string> | undefined = undefined;
  /** Files whose bodies are served with their first byte flipped; their etags stay right. */
  readonly corruptFiles = new Set<string>();
  /** Files answered with this X-Repo-Commit instead of the revision's commit. */
  readonly fileCommits = new Map<string, string>();

  private readonly repos = new Map<string, Repo>();
  private readonly renamed = new Map<string, string>();
  private readonly blobs = new Map<string, StoredFile>();
  private readonly hub = http.createServer((req, res) => this.serveHub(req, res));
  private readonly cdn = http.createServer((req, res) => this.serveCdn(req, res));

  static async start(): Promise<FakeHub> {
    const h = new FakeHub();
    h.url = await listen(h.hub);
    h.cdnUrl = await listen(h.cdn);
    return h;
  }

  async close(): Promise<void> {
    this.hub.closeAllConnections();
    this.cdn.closeAllConnections();
    await Promise.all([new Promise((r) => this.hub.close(r)), new Promise((r) => this.cdn.close(r))]);
  }

  /** Adds a commit to `repoId` (creating it) and points `revision` at it; returns the commit sha. */
  addRepo(repoId: string, opts: FakeRepoOptions): string {
    const files = new Map<string, StoredFile>();
    const h = createHash('sha1').update(repoId);
    for (const [name, spec] of Object.entries(opts.files)) {
      const f = typeof spec === 'string' || spec instanceof Uint8Array ? { content: spec } : spec;
      const data = Buffer.from(typeof f.content === 'string' ? Buffer.from(f.content, 'utf8') : f.content);
      const stored: StoredFile = { data, lfs: f.lfs === true, gitSha1: gitBlobSha1(data), sha256: sha256(data) };
      files.set(name, stored);
      this.blobs.set(stored.sha256, stored);
      h.update(name).update(data);
    }
    const commit = opts.commit ?? h.update(String(this.repos.get(repoId)?.commits.size ?? 0)).digest('hex');
    const repo = this.repos.get(repoId) ?? { commits: new Map(), refs: new Map(), token: undefined, gated: false };
    repo.commits.set(commit, files);
    repo.refs.set(opts.revision ?? 'main', commit);
    repo.token = opts.token ?? repo.token;
    repo.gated = opts.gated ?? repo.gated;
    this.repos.set(repoId, repo);
    return commit;
  }

  /** Requests for `from` get a relative 307 to `to`, as after a rename on the hub. */
  renameRepo(from: string, to: string): void {
    this.renamed.set(from, to);
  }

  /** Requests matching all given fields (`path` as a substring). */
  count(filter: Partial<Pick<RecordedRequest, 'server' | 'method'>> & { path?: string } = {}): number {
    return this.matching(filter).length;
  }

  matching(filter: Partial<Pick<RecordedRequest, 'server' | 'method'>> & { path?: string } = {}): RecordedRequest[] {
    return this.requests.filter(
      (r) =>
        (filter.server === undefined || r.server === filter.server) &&
        (filter.method === undefined || r.method === filter.method) &&
        (filter.path === undefined || r.path.includes(filter.path)),
    );
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  private misbehaves(file: string): boolean {
    return this.misbehavingFiles === undefined || this.misbehavingFiles.has(file);
  }

  private record(server: 'hub' | 'cdn', req: http.IncomingMessage): void {
    this.requests.push({
      server,
      method: req.method ?? '',
      path: req.url ?? '',
      range: header(req, 'range'),
      authorization: header(req, 'authorization'),
    });
  }

  private serveHub(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.record('hub', req);
    if (this.hang) return;
    const failure = this.hubFailures.shift() ?? (this.hubStatus === undefined ? undefined : { status: this.hubStatus });
    if (failure !== undefined) return end(res, failure.status, retryAfter(failure));
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec((req.url ?? '').split('?')[0] ?? '');
    if (m === null || (req.method !== 'GET' && req.method !== 'HEAD')) return end(res, 404, {});
    const repoId = m[1] as string;
    const revision = decodeURIComponent(m[2] as string);
    const file = (m[3] as string).split('/').map(decodeURIComponent).join('/');

    const newName = this.renamed.get(repoId);
    if (newName !== undefined) {
      return end(res, 307, { Location: `/${newName}/resolve/${m[2]}/${m[3]}` });
    }
    const repo = this.repos.get(repoId);
    if (repo === undefined)
      return end(res, 404, { 'X-Error-Code': 'RepoNotFound', 'X-Error-Message': 'Repository not found' });
    if (repo.token !== undefined && header(req, 'authorization') !== `Bearer ${repo.token}`) {
      return repo.gated
        ? end(res, 403, { 'X-Error-Code': 'GatedRepo', 'X-Error-Message': 'Access to this model is restricted' })
        : end(res, 401, { 'X-Error-Code': 'RepoNotFound', 'X-Error-Message': 'Invalid username or password.' });
    }
    const commit = repo.refs.get(revision) ?? (repo.commits.has(revision) ? revision : undefined);
    if (commit === undefined) {
      return end(res, 404, { 'X-Error-Code': 'RevisionNotFound', 'X-Error-Message': 'Invalid rev id' });
    }
    const stored = repo.commits.get(commit)?.get(file);
    if (stored === undefined) {
      return end(res, 404, {
        'X-Error-Code': 'EntryNotFound',
        'X-Repo-Commit': commit,
        'X-Error-Message': 'Entry not found',
      });
    }
    const answered = this.fileCommits.get(file) ?? commit;
    if (stored.lfs) {
      const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${stored.sha256}\nsize ${stored.data.length}\n`;
      return end(res, 302, {
        Location: `${this.cdnUrl}/cdn/${stored.sha256}?file=${encodeURIComponent(file)}`,
        'X-Repo-Commit': answered,
        ETag: `"${gitBlobSha1(Buffer.from(pointer))}"`,
        'X-Linked-Etag': `"${stored.sha256}"`,
        'X-Linked-Size': String(stored.data.length + (this.misbehaves(file) ? this.sizeDelta : 0)),
      });
    }
    this.sendBody(req, res, stored.data, { 'X-Repo-Commit': answered, ETag: `"${stored.gitSha1}"` }, file);
  }

  private serveCdn(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.record('cdn', req);
    const failure = this.cdnFailures.shift();
    if (failure !== undefined) return end(res, failure.status, retryAfter(failure));
    const url = new URL(req.url ?? '', this.cdnUrl);
    const m = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    const stored = m === null ? undefined : this.blobs.get(m[1] as string);
    if (stored === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) return end(res, 404, {});
    this.sendBody(req, res, stored.data, { ETag: `"${stored.sha256}"` }, url.searchParams.get('file') ?? '');
  }

  private sendBody(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    stored: Buffer,
    headers: Record<string, string>,
    file: string,
  ): void {
    let data = stored;
    if (this.corruptFiles.has(file) && data.length > 0) {
      data = Buffer.from(stored);
      data[0] = (data[0] as number) ^ 0xff;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(header(req, 'range') ?? '');
    let start = 0;
    let stop = data.length; // exclusive
    let status = 200;
    if (range !== null && !this.ignoreRange) {
      start = Number(range[1]);
      stop = range[2] === '' ? data.length : Math.min(Number(range[2]) + 1, data.length);
      if (start >= data.length) return end(res, 416, { ...headers, 'Content-Range': `bytes */${data.length}` });
      status = 206;
      headers = { ...headers, 'Content-Range': `bytes ${start}-${stop - 1}/${data.length}` };
    }
    const body = data.subarray(start, stop);
    const odd = this.misbehaves(file);
    const delta = odd ? this.sizeDelta : 0;
    if (req.method === 'HEAD') {
      res.writeHead(status, { ...headers, 'Content-Length': String(body.length + delta), 'Accept-Ranges': 'bytes' });
      res.end();
      return;
    }
    const lie = this.sizeDeltaInGet ? delta : 0;
    const endless = odd && this.endlessBody;
    const chunked = endless || lie < 0;
    res.writeHead(status, {
      ...headers,
      ...(chunked ? {} : { 'Content-Length': String(body.length + lie) }),
      'Accept-Ranges': 'bytes',
    });
    let cut: number | undefined = lie > 0 ? body.length : undefined;
    if (this.failAfterBytes !== undefined && this.failAfterBytes < body.length && this.failTransfers > 0) {
      this.failTransfers--;
      cut = this.failAfterBytes;
    }
    if (endless) {
      const noise = Buffer.alloc(CHUNK, 0x5a);
      const flood = (): void => {
        if (!res.destroyed) res.write(noise, () => setImmediate(flood));
      };
      flood();
      return;
    }
    const limit = cut ?? body.length;
    const drip = odd ? this.drip : undefined;
    const step = drip?.bytes ?? CHUNK;
    const delay = drip?.everyMs ?? this.chunkDelayMs;
    let sent = 0;
    const finish = (): void => {
      if (cut === undefined) res.end();
      else res.socket?.destroy(); // mid-transfer failure: the client sees a truncated body
    };
    const pump = (): void => {
      if (res.destroyed) return; // the client went away (or the test closed the hub)
      const chunk = body.subarray(sent, Math.min(sent + step, limit));
      sent += chunk.length;
      const next = sent >= limit ? finish : delay > 0 ? () => setTimeout(pump, delay) : pump;
      res.write(chunk, next);
    };
    pump();
  }
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Git's object id of a file: sha1("blob <size>\0" + contents); the hub's ETag for non-LFS files. */
export function gitBlobSha1(data: Uint8Array): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function retryAfter(f: FakeFailure): Record<string, string> {
  return f.retryAfter === undefined ? {} : { 'Retry-After': f.retryAfter };
}

function end(res: http.ServerResponse, status: number, headers: Record<string, string>): void {
  res.writeHead(status, { ...headers, 'Content-Length': '0' });
  res.end();
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
