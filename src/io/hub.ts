/**
 * `--model org/name[@revision]` -> a local directory holding what a model needs, downloaded into the
 * cache Python's huggingface_hub uses (layout in hub-cache.ts), so either side reuses the other's files.
 *
 * The protocol is `hf_hub_download`'s (huggingface_hub/file_download.py):
 * - HEAD {endpoint}/{repo}/resolve/{revision}/{file}, redirects not followed except relative ones
 *   (a renamed repo): X-Repo-Commit gives the commit, X-Linked-Etag or ETag (quotes stripped) the
 *   blob name, X-Linked-Size or Content-Length the size, Location (LFS files) the CDN URL to GET;
 * - 404 with X-Repo-Commit: recorded as `.no_exist/<commit>/<file>`;
 * - HF_HUB_OFFLINE, or a hub that cannot be reached: the cache alone, via refs/<revision>.
 *
 * Choices of ours:
 * - Only config.json is looked up at the requested revision; every other file at the commit it
 *   returned. All files then come from one commit (as transformers does with `_commit_hash`) and a
 *   file already in snapshots/<commit> (or in .no_exist/<commit>) costs no request: a cached model
 *   costs one HEAD.
 * - Weights are found by trying model.safetensors, then model.safetensors.index.json (and its
 *   shards), then pytorch_model.bin, rather than listing the repo through /api/models: the resolve
 *   route is all a mirror (HF_ENDPOINT) must serve, the 404s are cached as .no_exist like Python's, and
 *   the offline path makes the same choice by looking at the snapshot.
 * - @huggingface/hub supplies the cache folder naming; its downloadFileToCacheDir is not used: it
 *   files a download under the file's *last* commit (not the revision's, so refs/ and Python cannot
 *   find it), writes no refs, ignores HF_ENDPOINT and offline mode, and does not resume, lock or
 *   verify (see hub-download.ts).
 */
import { readFileSync, statSync, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fail, isMambaError, MambaError } from '../errors.js';
import { COMMIT_SHA, fileSize, RepoCache } from './hub-cache.js';
import { downloadBlob, type DownloadProgress } from './hub-download.js';
import { parseShardIndex } from './sharded.js';

export type { DownloadProgress } from './hub-download.js';
export { cliDownloadProgress, type CliDownloadProgress } from './download-progress.js';

export interface HubOptions {
  /** Branch, tag or commit sha (default: the `@revision` of the id, else `main`). */
  revision?: string;
  /** Base URL of the hub (default: HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string;
  /** Hugging Face home (default: HF_HOME, else $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface). */
  hfHome?: string;
  /** The hub cache itself (default: HF_HUB_CACHE, else <hfHome>/hub). */
  cacheDir?: string;
  /**
   * Sent as `Authorization: Bearer` to the hub's own origin, never to a CDN (default: HF_TOKEN, else
   * the file HF_TOKEN_PATH or <hfHome>/token that `huggingface-cli login` writes); false: none.
   */
  token?: string | false;
  /** No network at all, the cache only (default: HF_HUB_OFFLINE is 1, true, yes or on). */
  offline?: boolean;
  /** Where the variables above are read (default: process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Called as bytes of each downloaded file arrive. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Interrupted transfers retried (resuming) within one call; one that made progress resets the count (default 5). */
  maxRetries?: number;
  /** Limit for a metadata request and for a transfer receiving nothing, in ms (default: HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT, 10 s). */
  timeoutMs?: number;
  /** Stops the work (MambaError INTERRUPTED); a partial download is resumed next time. */
  signal?: AbortSignal;
}

/** A model repo at one commit, present in the cache. */
export interface HubSnapshot {
  /** `<cache>/models--org--name/snapshots/<commit>`: the directory to load. */
  readonly dir: string;
  readonly repoId: string;
  /** As asked: branch, tag or commit sha. */
  readonly revision: string;
  readonly commit: string;
  /** Repo paths present in `dir` that were asked for: config.json, tokenizer files found, weights. */
  readonly files: readonly string[];
  /** The weight files among them (for a sharded checkpoint: the index, then the shards). */
  readonly weights: readonly string[];
}

export interface ModelSpec {
  readonly repoId: string;
  readonly revision: string;
}

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
const OPTIONAL_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];
const SAFETENSORS = 'model.safetensors';
const SAFETENSORS_INDEX = 'model.safetensors.index.json';
const PYTORCH_BIN = 'pytorch_model.bin';

/**
 * A directory for `--model`: an existing directory as given; else the snapshot of the hub repo
 * `org/name[@revision]`, downloading what is missing. Something that looks like a path (starts with
 * `.`, `/` or `~`, or its first component exists here) but does not exist is FILE_NOT_FOUND.
 */
export async function resolveModel(idOrPath: string, opts: HubOptions = {}): Promise<string> {
  const local = localModelDir(idOrPath);
  if (local !== undefined) return local;
  return (await downloadModel(idOrPath, opts)).dir;
}

/** The hub cache directory the options and environment select (Python's HF_HUB_CACHE). */
export function hubCacheDir(opts: HubOptions = {}): string {
  const env = opts.env ?? process.env;
  if (opts.cacheDir !== undefined) return expandHome(opts.cacheDir);
  if (opts.hfHome !== undefined) return join(expandHome(opts.hfHome), 'hub');
  const fromEnv = nonEmpty(env['HF_HUB_CACHE']) ?? nonEmpty(env['HUGGINGFACE_HUB_CACHE']); // Python's legacy name
  return fromEnv !== undefined ? expandHome(fromEnv) : join(hfHome(opts), 'hub');
}

/**
 * Splits `org/name[@revision]` and checks it the way huggingface_hub's validate_repo_id does, but
 * requiring the namespace: letters, digits, `-`, `_`, `.`, no `--` or `..`, at most 96 characters.
 */
export function parseModelSpec(spec: string, revision?: string): ModelSpec {
  const at = spec.indexOf('@');
  const repoId = at < 0 ? spec : spec.slice(0, at);
  const specRevision = at < 0 ? undefined : spec.slice(at + 1);
  const part = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;
  const parts = repoId.split('/');
  if (
    parts.length !== 2 ||
    !parts.every((p) => part.test(p)) ||
    repoId.includes('--') ||
    repoId.includes('..') ||
    repoId.length > 96 ||
    repoId.endsWith('.git')
  ) {
    fail(
      'BAD_ARGUMENT',
      `model "${spec}" is neither an existing directory nor a Hugging Face repo id: expected "org/name" or ` +
        `"org/name@revision" (letters, digits, "-", "_" and "." in each part, no "--" or "..", at most 96 characters)`,
      { model: spec },
    );
  }
  if (specRevision !== undefined && revision !== undefined && specRevision !== revision) {
    fail('BAD_ARGUMENT', `model "${spec}" names revision "${specRevision}" but the revision option is "${revision}"`, {
      model: spec,
      revision,
    });
  }
  const rev = specRevision ?? revision ?? 'main';
  // Revisions become paths under refs/ (branch names may hold '/', e.g. refs/pr/1).
  if (rev === '' || rev.split('/').some((s) => s === '' || s === '.' || s === '..') || rev.includes('\\')) {
    fail('BAD_ARGUMENT', `revision "${rev}" in model "${spec}" is not a branch, tag or commit name (expected org/name@revision)`, { revision: rev });
  }
  return { repoId, revision: rev };
}

/** Makes `org/name[@revision]` present in the cache (see resolveModel) and describes the snapshot. */
export async function downloadModel(spec: string, opts: HubOptions = {}): Promise<HubSnapshot> {
  const { repoId, revision } = parseModelSpec(spec, opts.revision);
  const settings = hubSettings(opts);
  const cache = new RepoCache(settings.cacheDir, repoId);
  try {
    let r = new SnapshotResolver(settings, cache, repoId, revision, settings.offline ? { offline: true } : undefined);
    try {
      await r.start();
    } catch (e) {
      // Like Python: a hub that cannot be reached falls back to what the cache has.
      if (!(isMambaError(e, 'NETWORK') && e.details['unreachable'] === true)) throw e;
      r = new SnapshotResolver(settings, cache, repoId, revision, { unreachable: e });
      await r.start();
    }
    return await r.resolveModelFiles();
  } catch (e) {
    if (opts.signal?.aborted === true && !isMambaError(e, 'INTERRUPTED')) {
      throw new MambaError('INTERRUPTED', `resolving ${repoId}@${revision} was stopped`, { repo: repoId });
    }
    throw e;
  }
}

interface HubSettings {
  endpoint: string;
  cacheDir: string;
  token: string | undefined;
  offline: boolean;
  etagTimeoutMs: number;
  downloadTimeoutMs: number;
  maxRetries: number;
  onProgress: ((p: DownloadProgress) => void) | undefined;
  signal: AbortSignal | undefined;
}

function hubSettings(opts: HubOptions): HubSettings {
  const env = opts.env ?? process.env;
  const endpoint = (opts.endpoint ?? nonEmpty(env['HF_ENDPOINT']) ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/.test(endpoint)) {
    fail('BAD_ARGUMENT', `hub endpoint "${endpoint}" (HF_ENDPOINT) is not an http(s) URL`, { endpoint });
  }
  const seconds = (name: string): number => {
    const v = nonEmpty(env[name]);
    if (v === undefined) return 10_000; // Python's default for both timeouts
    const n = Number(v);
    if (!(n > 0)) fail('BAD_ARGUMENT', `${name}="${v}" is not a positive number of seconds`, { [name]: v });
    return n * 1000;
  };
  const maxRetries = opts.maxRetries ?? 5;
  if (!Number.isInteger(maxRetries) || maxRetries < 0) {
    fail('BAD_ARGUMENT', `maxRetries must be a whole number >= 0, got ${maxRetries}`, { maxRetries });
  }
  return {
    endpoint,
    cacheDir: hubCacheDir(opts),
    token: opts.token === false ? undefined : (opts.token ?? readToken(opts, env)),
    // Python's constants._is_true: "1", "ON", "YES", "TRUE" in any case.
    offline: opts.offline ?? ['1', 'ON', 'YES', 'TRUE'].includes((env['HF_HUB_OFFLINE'] ?? '').trim().toUpperCase()),
    etagTimeoutMs: opts.timeoutMs ?? seconds('HF_HUB_ETAG_TIMEOUT'),
    downloadTimeoutMs: opts.timeoutMs ?? seconds('HF_HUB_DOWNLOAD_TIMEOUT'),
    maxRetries,
    onProgress: opts.onProgress,
    signal: opts.signal,
  };
}

function hfHome(opts: HubOptions): string {
  const env = opts.env ?? process.env;
  if (opts.hfHome !== undefined) return expandHome(opts.hfHome);
  const home = nonEmpty(env['HF_HOME']);
  if (home !== undefined) return expandHome(home);
  return join(expandHome(nonEmpty(env['XDG_CACHE_HOME']) ?? '~/.cache'), 'huggingface');
}

function readToken(opts: HubOptions, env: Readonly<Record<string, string | undefined>>): string | undefined {
  const fromEnv = nonEmpty(env['HF_TOKEN']) ?? nonEmpty(env['HUGGING_FACE_HUB_TOKEN']);
  if (fromEnv !== undefined) return fromEnv.trim();
  const path = nonEmpty(env['HF_TOKEN_PATH']) ?? join(hfHome(opts), 'token');
  try {
    return nonEmpty(readFileSync(expandHome(path), 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** What the hub said about one file (HfFileMetadata in Python). */
interface FileMeta {
  commit: string;
  etag: string;
  size: number | undefined;
  /** Where to GET it: the CDN for LFS files, else the resolve URL. */
  location: string;
}

/** Why only the cache is used. */
type CacheOnly = { offline: true } | { unreachable: MambaError };

/** Finds or downloads the files of one repo at one commit. */
class SnapshotResolver {
  private commit = '';

  constructor(
    private readonly s: HubSettings,
    private readonly cache: RepoCache,
    private readonly repoId: string,
    private readonly revision: string,
    private readonly cacheOnly: CacheOnly | undefined,
  ) {}

  /** Finds the commit (from the hub, or from refs/ when cache-only) and makes config.json present. */
  async start(): Promise<void> {
    if (this.cacheOnly !== undefined) {
      const commit = await this.cache.commitFor(this.revision);
      if (commit === undefined) throw this.cacheMiss(join(this.cache.dir, 'refs', this.revision), `refs/${this.revision}`);
      this.commit = commit;
      await this.present('config.json', true);
      return;
    }
    if (COMMIT_SHA.test(this.revision) && (await this.cache.hasPointer(this.revision, 'config.json'))) {
      this.commit = this.revision; // a commit's snapshot never changes: nothing to ask
      return;
    }
    const meta = await this.head(this.revision, 'config.json');
    if (meta === null) {
      fail(
        'FILE_NOT_FOUND',
        `config.json not found in ${this.repoId} at revision ${this.revision} (${this.resolveUrl(this.revision, 'config.json')}): ` +
          `the repository, the revision or the file does not exist`,
        { repo: this.repoId, revision: this.revision, file: 'config.json' },
      );
    }
    this.commit = meta.commit;
    await this.cache.writeRef(this.revision, meta.commit);
    if (!(await this.cache.hasPointer(meta.commit, 'config.json'))) await this.materialize('config.json', meta);
  }

  async resolveModelFiles(): Promise<HubSnapshot> {
    const files = ['config.json'];
    for (const f of OPTIONAL_FILES) if (await this.present(f, false)) files.push(f);
    const weights = await this.weights();
    files.push(...weights);
    return {
      dir: this.cache.snapshotDir(this.commit),
      repoId: this.repoId,
      revision: this.revision,
      commit: this.commit,
      files,
      weights,
    };
  }

  private async weights(): Promise<string[]> {
    if (await this.present(SAFETENSORS, false)) return [SAFETENSORS];
    if (await this.present(SAFETENSORS_INDEX, false)) {
      const shards = await readShardNames(this.cache.pointer(this.commit, SAFETENSORS_INDEX));
      for (const shard of shards) {
        if (!(await this.present(shard, true))) {
          fail(
            'FILE_NOT_FOUND',
            `${shard}, listed in ${SAFETENSORS_INDEX}, is missing from ${this.repoId} at commit ${this.commit} ` +
              `(${this.resolveUrl(this.commit, shard)})`,
            { repo: this.repoId, commit: this.commit, file: shard },
          );
        }
      }
      return [SAFETENSORS_INDEX, ...shards];
    }
    if (await this.present(PYTORCH_BIN, false)) return [PYTORCH_BIN];
    const candidates = `${SAFETENSORS}, ${SAFETENSORS_INDEX} or ${PYTORCH_BIN}`;
    if (this.cacheOnly !== undefined) throw this.cacheMiss(this.cache.snapshotDir(this.commit), `weights (${candidates})`);
    fail('FILE_NOT_FOUND', `${this.repoId} at commit ${this.commit} has no weights: looked for ${candidates}`, {
      repo: this.repoId,
      commit: this.commit,
    });
  }

  /**
   * Whether `file` is in the snapshot after this call: cached, or found and downloaded. Cache-only,
   * a missing required file is an error (OFFLINE, or NETWORK when the hub could not be reached).
   */
  private async present(file: string, required: boolean): Promise<boolean> {
    if (await this.cache.hasPointer(this.commit, file)) return true;
    if (this.cacheOnly !== undefined) {
      if (required) throw this.cacheMiss(this.cache.pointer(this.commit, file), file);
      return false;
    }
    if (await this.cache.isMarkedMissing(this.commit, file)) return false;
    const meta = await this.head(this.commit, file);
    if (meta === null) return false;
    await this.materialize(file, meta);
    return true;
  }

  private async materialize(file: string, meta: FileMeta): Promise<void> {
    const blob = this.cache.blob(meta.etag);
    const have = await fileSize(blob);
    if (have === undefined || (meta.size !== undefined && have !== meta.size)) {
      await downloadBlob({
        file,
        url: meta.location,
        headers: this.headers(meta.location),
        blobPath: blob,
        lockPath: this.cache.lock(meta.etag),
        size: meta.size,
        sha256: /^[0-9a-f]{64}$/.test(meta.etag) ? meta.etag : undefined,
        maxRetries: this.s.maxRetries,
        stallTimeoutMs: this.s.downloadTimeoutMs,
        onProgress: this.s.onProgress,
        signal: this.s.signal,
      });
    }
    await this.cache.link(meta.commit, file, meta.etag);
  }

  /** Python's get_hf_file_metadata. null: the file does not exist at that revision (404). */
  private async head(revision: string, file: string): Promise<FileMeta | null> {
    let url = this.resolveUrl(revision, file);
    let res: Response;
    for (let hops = 0; ; hops++) {
      const timeout = AbortSignal.timeout(this.s.etagTimeoutMs);
      const signal = this.s.signal === undefined ? timeout : AbortSignal.any([timeout, this.s.signal]);
      try {
        res = await fetch(url, { method: 'HEAD', redirect: 'manual', headers: this.headers(url), signal });
      } catch (e) {
        if (this.s.signal?.aborted === true) throw e;
        const cause = (e as Error & { cause?: Error }).cause?.message ?? (e as Error).message;
        throw new MambaError(
          'NETWORK',
          `could not reach ${url} (${cause}); check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use the cache`,
          { url, unreachable: true },
        );
      }
      const location = res.headers.get('location');
      // A relative redirect is the hub's way to say the repo was renamed; an absolute one is the CDN.
      if (res.status >= 300 && res.status < 400 && location !== null && isRelativeUrl(location) && hops < 5) {
        url = new URL(location, url).href;
        continue;
      }
      break;
    }

    const errorCode = res.headers.get('x-error-code');
    const commitHeader = res.headers.get('x-repo-commit');
    if (res.status >= 400) {
      const detail = res.headers.get('x-error-message');
      const said = detail === null ? '' : `: ${detail}`;
      const facts = { repo: this.repoId, revision, file, url, status: res.status };
      if (res.status === 404 && (errorCode === null || errorCode === 'EntryNotFound')) {
        if (commitHeader !== null && COMMIT_SHA.test(commitHeader)) await this.cache.markMissing(commitHeader, file);
        return null;
      }
      if (errorCode === 'RevisionNotFound') {
        fail('FILE_NOT_FOUND', `revision "${revision}" does not exist in ${this.repoId} (${url}, HTTP ${res.status}${said})`, facts);
      }
      if (errorCode === 'RepoNotFound') {
        fail(
          'FILE_NOT_FOUND',
          `repository ${this.repoId} not found at ${url} (HTTP ${res.status}${said}); check the id, and for a private ` +
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

  private resolveUrl(revision: string, file: string): string {
    // As hf_hub_url: the revision quoted whole (refs/pr/1 -> refs%2Fpr%2F1), the file per segment.
    const path = file.split('/').map(encodeURIComponent).join('/');
    return `${this.s.endpoint}/${this.repoId}/resolve/${encodeURIComponent(revision)}/${path}`;
  }

  private headers(url: string): Record<string, string> {
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

  private cacheMiss(path: string, what: string): MambaError {
    const where = `${this.repoId}@${this.revision}`;
    if (this.cacheOnly !== undefined && 'unreachable' in this.cacheOnly) {
      const e = this.cacheOnly.unreachable;
      return new MambaError('NETWORK', `${e.message}; and ${what} of ${where} is not in the cache (${path})`, {
        ...e.details,
        missing: what,
        path,
      });
    }
    return new MambaError(
      'OFFLINE',
      `HF_HUB_OFFLINE is set and ${what} of ${where} is not in the cache (${path}); ` +
        `run once with network access (HF_HUB_OFFLINE unset) to download it`,
      { repo: this.repoId, revision: this.revision, missing: what, path },
    );
  }
}

/** The distinct shard files of a safetensors index, each a relative file name inside the repo. */
async function readShardNames(indexPath: string): Promise<string[]> {
  const shards = parseShardIndex(await readFile(indexPath, 'utf8'), indexPath).shards;
  for (const s of shards) {
    const ok = !s.startsWith('/') && !s.includes('\\') && !s.split('/').some((p) => p === '..' || p === '');
    if (!ok) {
      fail('CORRUPT_FILE', `${indexPath} lists shard ${JSON.stringify(s)}, which is not a relative file name in the repo`, {
        file: indexPath,
        shard: s,
      });
    }
  }
  return [...shards];
}

/**
 * The local directory `arg` names, or undefined for a repo id. A path-looking argument (starts with
 * `.`, `/` or `~`, has a drive letter or backslash, or its first component exists) must exist.
 */
function localModelDir(arg: string): string | undefined {
  const path = expandHome(arg);
  const st = statOrUndefined(path);
  if (st?.isDirectory() === true) return path;
  if (st !== undefined) {
    fail('BAD_ARGUMENT', `${arg} is a file; expected a model directory (with config.json and weights) or a repo id org/name`, {
      model: arg,
    });
  }
  const first = arg.split(/[\\/]/)[0] ?? '';
  const partly = arg.includes('/') && first !== '' && statOrUndefined(first) !== undefined;
  if (/^[.~/]/.test(arg) || /^[A-Za-z]:|\\/.test(arg) || partly) {
    fail(
      'FILE_NOT_FOUND',
      `model directory ${arg} does not exist` +
        (partly && !/^[.~/]/.test(arg)
          ? ` ("${first}" exists here, so it was read as a path; to use the hub repo ${arg}, run from another directory)`
          : ''),
      { model: arg },
    );
  }
  return undefined;
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

function isRelativeUrl(u: string): boolean {
  return !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(u) && !u.startsWith('//');
}

/** Python's _normalize_etag, plus a weak-validator prefix; only safe file names are accepted. */
function normalizeEtag(etag: string | null): string | undefined {
  if (etag === null) return undefined;
  const e = etag.trim().replace(/^W\//, '').replace(/^"+|"+$/g, '');
  return /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(e) ? e : undefined;
}
