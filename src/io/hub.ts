/**
 * `--model org/name[@revision]` -> a local directory holding what a model needs, downloaded into the
 * cache Python's huggingface_hub uses (layout in hub-cache.ts), so either side reuses the other's files.
 * The pieces: what the argument names (hub-spec.ts), options and environment (hub-settings.ts), the
 * metadata protocol (hub-http.ts), the transfer of one file (hub-download.ts).
 *
 * Choices of ours:
 * - Only config.json is looked up at the requested revision; every other file at the commit it
 *   returned. All files then come from one commit (as transformers does with `_commit_hash`) and a
 *   file already in snapshots/<commit> (or in .no_exist/<commit>) costs no request: a cached model
 *   costs one HEAD. A hub answering for another commit for one file is refused, never mixed in.
 * - Weights are found by trying model.safetensors, then model.safetensors.index.json (and its
 *   shards), then pytorch_model.bin, rather than listing the repo through /api/models: the resolve
 *   route is all a mirror (HF_ENDPOINT) must serve, the 404s are cached as .no_exist like Python's, and
 *   the offline path makes the same choice by looking at the snapshot.
 * - HF_HUB_OFFLINE, or a hub that cannot be reached or keeps answering 429/5xx: the cache alone, via
 *   refs/<revision>, with a warning in the second case (as Python falls back).
 * - @huggingface/hub supplies the cache folder naming; its downloadFileToCacheDir is not used: it
 *   files a download under the file's *last* commit (not the revision's, so refs/ and Python cannot
 *   find it), writes no refs, ignores HF_ENDPOINT and offline mode, and does not resume, lock or
 *   verify (see hub-download.ts).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail, isMambaError, MambaError } from '../errors.js';
import { COMMIT_SHA, fileSize, RepoCache } from './hub-cache.js';
import { downloadBlob } from './hub-download.js';
import { expectedDigest, HubHttp, type FileMeta } from './hub-http.js';
import { hubSettings, type HubOptions, type HubSettings } from './hub-settings.js';
import { checkShardNames, localModelDir, parseModelSpec } from './hub-spec.js';
import { parseShardIndex } from './sharded.js';

export type { DownloadProgress } from './hub-download.js';
export { cliDownloadProgress, type CliDownloadProgress } from './download-progress.js';
export { DEFAULT_ENDPOINT, hubCacheDir, type HubOptions } from './hub-settings.js';
export { parseModelSpec, type ModelSpec } from './hub-spec.js';

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

const OPTIONAL_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
  'chat_template.jinja',
];
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

/** Makes `org/name[@revision]` present in the cache (see resolveModel) and describes the snapshot. */
export async function downloadModel(spec: string, opts: HubOptions = {}): Promise<HubSnapshot> {
  const { repoId, revision } = parseModelSpec(spec, opts.revision);
  const settings = hubSettings(opts);
  const cache = new RepoCache(settings.cacheDir, repoId);
  try {
    let r = new SnapshotResolver(settings, cache, repoId, revision, settings.offline ? { offline: true } : undefined);
    if (!settings.offline) await cache.removeStaleTemps();
    try {
      await r.start();
    } catch (e) {
      // Like Python: a hub that cannot be reached (or keeps failing) falls back to what the cache has.
      if (!(isMambaError(e, 'NETWORK') && e.details['unreachable'] === true)) throw e;
      r = new SnapshotResolver(settings, cache, repoId, revision, { unreachable: e });
      await r.start();
      const snapshot = await r.resolveModelFiles();
      settings.onWarning(`${e.message}; using the cached snapshot ${snapshot.commit} of ${repoId}@${revision}`);
      return snapshot;
    }
    return await r.resolveModelFiles();
  } catch (e) {
    if (opts.signal?.aborted === true && !isMambaError(e, 'INTERRUPTED')) {
      throw new MambaError('INTERRUPTED', `resolving ${repoId}@${revision} was stopped`, { repo: repoId });
    }
    throw e;
  }
}

/** Why only the cache is used. */
type CacheOnly = { offline: true } | { unreachable: MambaError };

/** Finds or downloads the files of one repo at one commit. */
class SnapshotResolver {
  private commit = '';
  private readonly http: HubHttp;

  constructor(
    private readonly s: HubSettings,
    private readonly cache: RepoCache,
    private readonly repoId: string,
    private readonly revision: string,
    private readonly cacheOnly: CacheOnly | undefined,
  ) {
    this.http = new HubHttp(s, repoId);
  }

  /** Finds the commit (from the hub, or from refs/ when cache-only) and makes config.json present. */
  async start(): Promise<void> {
    if (this.cacheOnly !== undefined) {
      const commit = await this.cache.commitFor(this.revision);
      if (commit === undefined) {
        throw this.cacheMiss(join(this.cache.dir, 'refs', this.revision), `refs/${this.revision}`);
      }
      this.commit = commit;
      await this.present('config.json', true);
      return;
    }
    if (COMMIT_SHA.test(this.revision) && (await this.cache.hasPointer(this.revision, 'config.json'))) {
      this.commit = this.revision; // a commit's snapshot never changes: nothing to ask
      return;
    }
    const meta = await this.http.head(this.revision, 'config.json');
    if ('missing' in meta) {
      if (meta.commit !== undefined) await this.cache.markMissing(meta.commit, 'config.json');
      fail(
        'FILE_NOT_FOUND',
        `config.json not found in ${this.repoId} at revision ${this.revision} ` +
          `(${this.http.resolveUrl(this.revision, 'config.json')}): the repository, the revision or the file ` +
          `does not exist`,
        { repo: this.repoId, revision: this.revision, file: 'config.json' },
      );
    }
    if (COMMIT_SHA.test(this.revision) && meta.commit !== this.revision) this.otherCommit('config.json', meta.commit);
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
      const indexPath = this.cache.pointer(this.commit, SAFETENSORS_INDEX);
      const listed = parseShardIndex(await readFile(indexPath, 'utf8'), indexPath).shards;
      const shards = checkShardNames(listed, indexPath, ['config.json', ...OPTIONAL_FILES, SAFETENSORS_INDEX]);
      for (const shard of shards) {
        if (!(await this.present(shard, true))) {
          fail(
            'FILE_NOT_FOUND',
            `${shard}, listed in ${SAFETENSORS_INDEX}, is missing from ${this.repoId} at commit ${this.commit} ` +
              `(${this.http.resolveUrl(this.commit, shard)})`,
            { repo: this.repoId, commit: this.commit, file: shard },
          );
        }
      }
      return [SAFETENSORS_INDEX, ...shards];
    }
    if (await this.present(PYTORCH_BIN, false)) return [PYTORCH_BIN];
    const candidates = `${SAFETENSORS}, ${SAFETENSORS_INDEX} or ${PYTORCH_BIN}`;
    if (this.cacheOnly !== undefined) {
      throw this.cacheMiss(this.cache.snapshotDir(this.commit), `weights (${candidates})`);
    }
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
    const meta = await this.http.head(this.commit, file);
    if ('missing' in meta) {
      // Recorded only for our commit: a marker under another one would be a claim about a snapshot not asked.
      if (meta.commit === this.commit) await this.cache.markMissing(this.commit, file);
      return false;
    }
    if (meta.commit !== this.commit) this.otherCommit(file, meta.commit);
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
        headers: this.http.headers(meta.location),
        blobPath: blob,
        lockPath: this.cache.lock(meta.etag),
        size: meta.size,
        digest: expectedDigest(meta.etag),
        maxRetries: this.s.maxRetries,
        retry: this.s.retry,
        stallTimeoutMs: this.s.downloadTimeoutMs,
        deadline: { minMs: this.s.downloadDeadlineMs, minBytesPerSecond: this.s.minBytesPerSecond },
        onProgress: this.s.onProgress,
        signal: this.s.signal,
      });
    }
    await this.cache.link(this.commit, file, meta.etag);
  }

  /** The hub answered for `file` with another commit than the one this snapshot is (X-Repo-Commit). */
  private otherCommit(file: string, commit: string): never {
    const expected = this.commit === '' ? this.revision : this.commit;
    fail(
      'NETWORK',
      `${this.http.resolveUrl(expected, file)} answered for commit ${commit} (X-Repo-Commit), not for ${expected}, ` +
        `the commit this snapshot of ${this.repoId}@${this.revision} is made of; files of two commits are ` +
        `never mixed: ` +
        `try again (the branch may have moved), or pin a commit with @<sha>`,
      { repo: this.repoId, file, expected, actual: commit },
    );
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
