/**
 * Downloads one blob of the hub cache so that it is resumable, verified and atomic:
 * - bytes go to `blobs/<etag>.incomplete` (the name Python's huggingface_hub also resumes from);
 *   an existing one is continued with `Range: bytes=<size>-`; a 200 reply (range ignored) starts over;
 * - only one process writes a given `.incomplete` at a time (file-lock.ts);
 * - the result must have the size the hub announced and, for LFS files whose etag is their sha256,
 *   that sha256; only then is it renamed to `blobs/<etag>`, so no reader ever sees half a file under
 *   its final name;
 * - an interrupted transfer is retried (resuming) inside the call; what it leaves resumes next time.
 *
 * @huggingface/hub's downloadFileToCacheDir does none of these (it rewrites `.incomplete` from zero,
 * takes no lock and checks nothing), hence this file.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fail, MambaError } from '../errors.js';
import { acquireFileLock } from './file-lock.js';
import { fileSize } from './hub-cache.js';

export interface DownloadProgress {
  /** The file's path in the repo, e.g. `model.safetensors`. */
  readonly file: string;
  /** Bytes on disk so far, counting what an earlier, interrupted download left. */
  readonly loaded: number;
  /** The file's full size in bytes (undefined only if the server did not tell it). */
  readonly total: number | undefined;
}

export interface BlobRequest {
  /** The file's path in the repo, for messages and progress. */
  file: string;
  /** Where to GET the bytes: the resolve URL, or the CDN URL the hub redirected to. */
  url: string;
  /** Authorization (only for the hub's own origin) and user agent. */
  headers: Record<string, string>;
  blobPath: string;
  lockPath: string;
  /** Expected size (X-Linked-Size / Content-Length of the HEAD). */
  size: number | undefined;
  /** Expected sha256 in hex, when the etag is one (LFS files). */
  sha256: string | undefined;
  /** Interrupted transfers retried in this call (an attempt that made progress resets the count). */
  maxRetries: number;
  /** A transfer that receives nothing for this long counts as interrupted. */
  stallTimeoutMs: number;
  onProgress: ((p: DownloadProgress) => void) | undefined;
  signal: AbortSignal | undefined;
}

/** A transfer that stopped early; the `.incomplete` file keeps what arrived. */
class Interrupted extends Error {}

/** Where `downloadBlob` leaves partial data. */
export function incompletePath(blobPath: string): string {
  return `${blobPath}.incomplete`;
}

export async function downloadBlob(req: BlobRequest): Promise<void> {
  // A lost lock (judged stale by another process) means someone else may be writing the same
  // `.incomplete`: never publish then; take the lock again and look at the state afresh.
  for (let round = 0; round < 3; round++) {
    await mkdir(dirname(req.blobPath), { recursive: true });
    const lock = await acquireFileLock(req.lockPath, req.signal === undefined ? {} : { signal: req.signal });
    try {
      const have = await fileSize(req.blobPath);
      if (have !== undefined && (req.size === undefined || have === req.size)) return; // done meanwhile
      await fillIncomplete(req);
      if (!(await lock.isHeld())) continue;
      await rename(incompletePath(req.blobPath), req.blobPath);
      return;
    } finally {
      await lock.release();
    }
  }
  fail('NETWORK', `download of ${req.file} kept losing its lock ${req.lockPath} to other processes; try again`, {
    file: req.file,
    lock: req.lockPath,
  });
}

/** Brings `.incomplete` to the full, verified contents, retrying interrupted transfers. */
async function fillIncomplete(req: BlobRequest): Promise<void> {
  const incomplete = incompletePath(req.blobPath);
  let failures = 0;
  let restartedAfterBadHash = false;
  for (;;) {
    const before = (await fileSize(incomplete)) ?? 0;
    let result: { resumedFrom: number; sha256: string | undefined };
    try {
      result = await transfer(req, incomplete);
    } catch (e) {
      if (!(e instanceof Interrupted)) throw e;
      const after = (await fileSize(incomplete)) ?? 0;
      failures = after > before ? 1 : failures + 1;
      if (failures > req.maxRetries) {
        fail(
          'NETWORK',
          `download of ${req.file} from ${req.url} was interrupted (${e.message}); ` +
            `${after}${req.size === undefined ? '' : ` of ${req.size}`} bytes are kept in ${incomplete} ` +
            `and the next run resumes from there`,
          { file: req.file, url: req.url, incomplete, loaded: after, total: req.size },
        );
      }
      await sleep(Math.min(250 * 2 ** (failures - 1), 4000), undefined, signalOpt(req.signal));
      continue;
    }
    if (req.sha256 !== undefined && result.sha256 !== req.sha256) {
      await rm(incomplete, { force: true });
      // A kept prefix may have been written by something else (a crashed or concurrent writer that
      // took no lock, e.g. Python): start once from zero before blaming the server.
      if (result.resumedFrom > 0 && !restartedAfterBadHash) {
        restartedAfterBadHash = true;
        continue;
      }
      fail(
        'CORRUPT_FILE',
        `${req.file} downloaded from ${req.url} has sha256 ${result.sha256}, but the hub announced ${req.sha256}; ` +
          `the partial file was deleted, try again`,
        { file: req.file, url: req.url, expected: req.sha256, actual: result.sha256 },
      );
    }
    return;
  }
}

/**
 * One GET, appending to `.incomplete` from its current length. Returns the sha256 of the whole file
 * when one is expected. Throws Interrupted for anything a retry could fix.
 */
async function transfer(
  req: BlobRequest,
  incomplete: string,
): Promise<{ resumedFrom: number; sha256: string | undefined }> {
  let offset = (await fileSize(incomplete)) ?? 0;
  if (req.size !== undefined && offset > req.size) {
    await rm(incomplete, { force: true }); // longer than the file: not a prefix of it
    offset = 0;
  }
  const resumedFrom = offset;
  if (req.size !== undefined && offset === req.size) {
    // Complete already (stopped between the last byte and the rename): only verify.
    req.onProgress?.({ file: req.file, loaded: offset, total: req.size });
    const sha256 = req.sha256 === undefined ? undefined : (await feedFile(incomplete, createHash('sha256'))).digest('hex');
    return { resumedFrom, sha256 };
  }

  const stall = new AbortController();
  const signal = req.signal === undefined ? stall.signal : AbortSignal.any([stall.signal, req.signal]);
  let timer: NodeJS.Timeout | undefined;
  const armStall = (): void => {
    clearTimeout(timer);
    timer = setTimeout(
      () => stall.abort(new Interrupted(`no data for ${req.stallTimeoutMs / 1000} s`)),
      req.stallTimeoutMs,
    );
  };
  const headers: Record<string, string> = { ...req.headers, 'accept-encoding': 'identity' };
  if (offset > 0) headers['range'] = `bytes=${offset}-`;

  let fh: FileHandle | undefined;
  try {
    armStall();
    let res: Response;
    try {
      res = await fetch(req.url, { headers, signal, redirect: 'follow' });
    } catch (e) {
      throw interruption(e, req);
    }
    if (res.status === 416) {
      // Our prefix is at least as long as the file (its size was unknown to us): start over.
      await res.body?.cancel();
      await rm(incomplete, { force: true });
      throw new Interrupted('range not satisfiable; the partial file was discarded');
    }
    if (!res.ok) {
      await res.body?.cancel();
      const what = `download of ${req.file} from ${req.url} failed with HTTP ${res.status}`;
      if (res.status === 429 || res.status >= 500) throw new Interrupted(`HTTP ${res.status}`);
      if (res.status === 401 || res.status === 403) {
        fail('NETWORK', `${what}: access denied; set HF_TOKEN to a token that can read this repository`, {
          file: req.file,
          url: req.url,
          status: res.status,
        });
      }
      fail('NETWORK', what, { file: req.file, url: req.url, status: res.status });
    }
    if (offset > 0 && res.status !== 206) offset = 0; // a 200: the server ignored the range, start over
    if (offset > 0 && rangeStart(res.headers.get('content-range')) !== offset) {
      await res.body?.cancel(); // some other part of the file: useless here
      await rm(incomplete, { force: true });
      throw new Interrupted(`asked for bytes from ${offset}, got Content-Range ${res.headers.get('content-range')}`);
    }
    const hash = req.sha256 === undefined ? undefined : createHash('sha256');
    fh = await open(incomplete, offset > 0 ? 'a' : 'w');
    if (hash !== undefined && offset > 0) {
      clearTimeout(timer); // hashing a large prefix is not a stall
      await feedFile(incomplete, hash, offset);
      armStall();
    }
    const total = req.size ?? contentLength(res, offset);
    let loaded = offset;
    req.onProgress?.({ file: req.file, loaded, total });
    if (res.body === null) throw new Interrupted('empty response');
    try {
      for await (const chunk of res.body) {
        armStall();
        hash?.update(chunk);
        await writeAll(fh, chunk);
        loaded += chunk.byteLength;
        req.onProgress?.({ file: req.file, loaded, total });
      }
    } catch (e) {
      throw interruption(e, req);
    }
    await fh.sync(); // the rename that publishes it must not outlive its data after a crash
    if (total !== undefined && loaded < total) throw new Interrupted(`the reply ended after ${loaded} of ${total} bytes`);
    if (total !== undefined && loaded > total) {
      await rm(incomplete, { force: true });
      fail('CORRUPT_FILE', `${req.url} sent ${loaded} bytes for ${req.file}, but the hub announced ${total}`, {
        file: req.file,
        url: req.url,
        expected: total,
        actual: loaded,
      });
    }
    return { resumedFrom, sha256: hash?.digest('hex') };
  } finally {
    clearTimeout(timer);
    await fh?.close();
  }
}

/** Turns a fetch/stream failure into Interrupted (retryable), or INTERRUPTED when the caller aborted. */
function interruption(e: unknown, req: BlobRequest): Error {
  if (req.signal?.aborted) {
    return new MambaError(
      'INTERRUPTED',
      `download of ${req.file} was stopped; the partial file ${incompletePath(req.blobPath)} is resumed next time`,
      { file: req.file },
    );
  }
  if (e instanceof Interrupted || e instanceof MambaError) return e;
  const err = e as Error & { cause?: { message?: string } };
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return new Interrupted(err.message);
  return new Interrupted(err.cause?.message ?? err.message);
}

function rangeStart(contentRange: string | null): number {
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(contentRange?.trim() ?? '');
  return m === null ? -1 : Number(m[1]);
}

function contentLength(res: Response, offset: number): number | undefined {
  const n = Number(res.headers.get('content-length') ?? NaN);
  return Number.isFinite(n) ? n + offset : undefined;
}

async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  let done = 0;
  while (done < chunk.byteLength) {
    const { bytesWritten } = await fh.write(chunk, done, chunk.byteLength - done);
    done += bytesWritten;
  }
}

/** Feeds the first `length` bytes of `path` (all of it by default) into `hash`. */
async function feedFile(path: string, hash: Hash, length?: number): Promise<Hash> {
  const stream = createReadStream(path, length === undefined ? {} : { start: 0, end: length - 1 });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash;
}

function signalOpt(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal === undefined ? {} : { signal };
}
