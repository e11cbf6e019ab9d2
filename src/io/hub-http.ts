/**
 * The hub's HTTP protocol for metadata, as `hf_hub_download` speaks it (huggingface_hub/file_download.py,
 * get_hf_file_metadata):
 * - HEAD {endpoint}/{repo}/resolve/{revision}/{file}, redirects not followed except relative ones
 *   (a renamed repo): X-Repo-Commit gives the commit, X-Linked-Etag or ETag (quotes stripped) the
 *   blob name, X-Linked-Size or Content-Length the size, Location (LFS files) the CDN URL to GET;
 * - 404 with X-Repo-Commit: the file does not exist at that commit; X-Error-Code tells a missing
 *   repo, revision or entry, a gated repo;
 * - 429 and 5xx are retried with exponential backoff and jitter, honouring Retry-After (bounded);
 *   a hub that cannot be reached, or still answers 429/5xx after the retries, is `unreachable`
 *   (details.unreachable), which lets the caller fall back to the cache as Python does.
 * The transfer of the bytes themselves is hub-download.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { fail, MambaError } from '../errors.js';
import { COMMIT_SHA } from './hub-cache.js';
import type { HubSettings, RetryPolicy } from './hub-settings.js';

/** What a file must hash to: sha256 (LFS files), or git's blob id, sha1("blob <size>\0" + contents). */
export interface ExpectedDigest {
  algorithm: 'sha256' | 'git-sha1';
  hex: string;
}

/** What the hub said about one file (HfFileMetadata in Python). */
export interface FileMeta {
  commit: string;
  etag: string;
  size: number | undefined;
  /** Where to GET it: the CDN for LFS files, else the resolve URL at the commit. */
  location: string;
}

/** The file does not exist at the revision; `commit` is the commit the hub said so for, if any. */
export interface MissingFile {
  missing: true;
  commit: string | undefined;
}

/** Talks to one repo's resolve route. */
export class HubHttp {
  constructor(
    private readonly s: HubSettings,
    private readonly repoId: string,
  ) {}

  /** Python's get_hf_file_metadata, with retries on 429/5xx. */
  async head(revision: string, file: string): Promise<FileMeta | MissingFile> {
    for (let attempt = 1; ; attempt++) {
      const { res, url } = await this.headOnce(revision, file);
      if (res.status !== 429 && res.status < 500) return this.interpret(res, url, revision, file);
      const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), Date.now());
      const tooLong = retryAfterMs !== undefined && retryAfterMs > this.s.retry.maxRetryAfterMs;
      if (attempt <= this.s.maxRetries && !tooLong) {
        await sleep(backoffMs(attempt, this.s.retry, retryAfterMs), undefined, signalOpt(this.s.signal));
        continue;
      }
      const detail = res.headers.get('x-error-message');
      throw new MambaError(
        'NETWORK',
        `${url} answered HTTP ${res.status}${detail === null ? '' : ` (${detail})`}` +
          (tooLong
            ? ` asking to retry after ${Math.round(retryAfterMs / 1000)} s (Retry-After), longer than the ` +
              `${this.s.retry.maxRetryAfterMs / 1000} s waited for`
            : ` ${attempt} time${attempt > 1 ? 's' : ''} (retried with backoff)`) +
          `; the hub is unavailable: try again later, or set HF_HUB_OFFLINE=1 to use the cache`,
        { url, status: res.status, attempts: attempt, unreachable: true },
      );
    }
  }

  resolveUrl(revision: string, file: string): string {
    // As hf_hub_url: the revision quoted whole (refs/pr/1 -> refs%2Fpr%2F1), the file per segment.
    const path = file.split('/').map(encodeURIComponent).join('/');
    return `${this.s.endpoint}/${this.repoId}/resolve/${encodeURIComponent(revision)}/${path}`;
  }

  headers(url: string): Record<string, string> {
    const h: Record<string, string> = {
      'user-agent': `mamba-ts; node/${process.versions.node}`,
      // Sizes and ranges are about the stored bytes, not a compressed transfer (as Python does).
      'accept-encoding': 'identity',
    };
    // The token goes to the hub only: a CDN URL is pre-signed, and another origin must not see it.
    if (this.s.token !== undefined && new URL(url).origin === new URL(this.s.endpoint).origin) {
      h['authorization'] = `Bearer ${this.s.token}`;
    }
    return h;
  }

  /**
   * One HEAD, following relative redirects (a renamed repo). A connection that fails or times out is
   * not retried (like Python's HEAD): a hub that is down falls back to the cache at once.
   */
  private async headOnce(revision: string, file: string): Promise<{ res: Response; url: string }> {
    let url = this.resolveUrl(revision, file);
    for (let hops = 0; ; hops++) {
      const timeout = AbortSignal.timeout(this.s.etagTimeoutMs);
      const signal = this.s.signal === undefined ? timeout : AbortSignal.any([timeout, this.s.signal]);
      let res: Response;
      try {
        res = await fetch(url, { method: 'HEAD', redirect: 'manual', headers: this.headers(url), signal });
      } catch (e) {
        if (this.s.signal?.aborted === true) throw e;
        const cause = (e as Error & { cause?: Error }).cause?.message ?? (e as Error).message;
        throw new MambaError(
          'NETWORK',
          `could not reach ${url} (${cause}); check the network or HF_ENDPOINT, ` +
            `or set HF_HUB_OFFLINE=1 to use the cache`,
          { url, unreachable: true },
        );
      }
      const location = res.headers.get('location');
      // A relative redirect is the hub's way to say the repo was renamed; an absolute one is the CDN.
      if (res.status >= 300 && res.status < 400 && location !== null && isRelativeUrl(location) && hops < 5) {
        url = new URL(location, url).href;
        continue;
      }
      return { res, url };
    }
  }

  private interpret(res: Response, url: string, revision: string, file: string): FileMeta | MissingFile {
    const errorCode = res.headers.get('x-error-code');
    const commitHeader = res.headers.get('x-repo-commit');
    if (res.status >= 400) {
      const detail = res.headers.get('x-error-message');
      const said = detail === null ? '' : `: ${detail}`;
      const facts = { repo: this.repoId, revision, file, url, status: res.status };
      if (res.status === 404 && (errorCode === null || errorCode === 'EntryNotFound')) {
        const commit = commitHeader !== null && COMMIT_SHA.test(commitHeader) ? commitHeader : undefined;
        return { missing: true, commit };
      }
      if (errorCode === 'RevisionNotFound') {
        fail(
          'FILE_NOT_FOUND',
          `revision "${revision}" does not exist in ${this.repoId} (${url}, HTTP ${res.status}${said})`,
          facts,
        );
      }
      if (errorCode === 'RepoNotFound') {
        fail(
          'FILE_NOT_FOUND',
          `repository ${this.repoId} not found at ${url} (HTTP ${res.status}${said}); check the id, ` +
            `and for a private ` +
            `or gated repository set HF_TOKEN to a token that can read it` +
            (this.s.token === undefined ? '' : ' (a token was sent: it has no access)'),
          facts,
        );
      }
      if (errorCode === 'GatedRepo') {
        fail(
          'NETWORK',
          `${this.repoId} is gated (${url}, HTTP ${res.status}${said}): accept its conditions at ` +
            `${this.s.endpoint}/${this.repoId}, then set HF_TOKEN to a token of that account`,
          facts,
        );
      }
      if (res.status === 401 || res.status === 403) {
        fail(
          'NETWORK',
          `access to ${url} was refused (HTTP ${res.status}${said}): ` +
            (this.s.token === undefined
              ? 'set HF_TOKEN to a Hugging Face token that can read this repository'
              : 'the token in use (HF_TOKEN) cannot read this repository'),
          facts,
        );
      }
      fail('NETWORK', `${url} answered HTTP ${res.status}${said}`, facts);
    }

    const etag = normalizeEtag(res.headers.get('x-linked-etag') ?? res.headers.get('etag'));
    if (commitHeader === null || !COMMIT_SHA.test(commitHeader) || etag === undefined) {
      fail(
        'NETWORK',
        `${url} answered without a commit (X-Repo-Commit) or an ETag naming the file's contents: ` +
          `${this.s.endpoint} (HF_ENDPOINT) does not look like a Hugging Face hub`,
        { url, commit: commitHeader, etag },
      );
    }
    const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length') ?? NaN);
    const location = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null;
    return {
      commit: commitHeader,
      etag,
      size: Number.isSafeInteger(size) && size >= 0 ? size : undefined,
      // The CDN URL is content-addressed already; a file served by the hub itself is fetched at the
      // commit, so a branch moving between the HEAD and the GET cannot give bytes of another version.
      location:
        location !== null
          ? new URL(location, url).href
          : url.replace(`/resolve/${encodeURIComponent(revision)}/`, `/resolve/${commitHeader}/`),
    };
  }
}

/**
 * The wait before retry `attempt` (1-based): Retry-After when the server gave one, else
 * base * 2^(attempt-1) capped at max, of which a random part of the lower half is dropped (jitter,
 * so that clients refused together do not come back together).
 */
export function backoffMs(attempt: number, policy: RetryPolicy, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, policy.maxRetryAfterMs);
  const d = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt - 1, 30));
  return d / 2 + Math.random() * (d / 2);
}

/** Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Number(v) * 1000;
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : undefined;
}

/**
 * What the etag says the contents hash to: a sha256 (LFS files: X-Linked-Etag) or git's blob sha1
 * (small files: sha1("blob <size>\0" + contents)), or nothing checkable (a mirror's own etags).
 */
export function expectedDigest(etag: string): ExpectedDigest | undefined {
  if (/^[0-9a-f]{64}$/.test(etag)) return { algorithm: 'sha256', hex: etag };
  if (/^[0-9a-f]{40}$/.test(etag)) return { algorithm: 'git-sha1', hex: etag };
  return undefined;
}

/**
 * Python's _normalize_etag, plus a weak-validator prefix. The etag names a file under blobs/, so only
 * safe names are accepted: no leading '.', no '/', at most 128 characters (a sha256 is 64).
 */
export function normalizeEtag(etag: string | null): string | undefined {
  if (etag === null) return undefined;
  const e = etag
    .trim()
    .replace(/^W\//, '')
    .replace(/^"+|"+$/g, '');
  return /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(e) ? e : undefined;
}

function isRelativeUrl(u: string): boolean {
  return !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(u) && !u.startsWith('//');
}

function signalOpt(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal === undefined ? {} : { signal };
}
