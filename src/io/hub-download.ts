/**
 * Downloads one blob of the hub cache so that it is resumable, verified and atomic:
 * - bytes go to `blobs/<etag>.incomplete` (the name Python's huggingface_hub also resumes from);
 *   an existing one is continued with `Range: bytes=<size>-`; a 200 reply (range ignored) starts over;
 * - only one process writes a given `.incomplete` at a time (file-lock.ts);
 * - the result must have the size the hub announced and the hash its etag names (sha256 for LFS
 *   files, git's blob sha1 for small ones); only then is it renamed to `blobs/<etag>`, so no reader
 *   ever sees half a file under its final name;
 * - an interrupted transfer is retried (resuming) inside the call; what it leaves resumes next time.
 *
 * The server is not trusted to be sane: a body is cut the moment it passes the announced size (so it
 * cannot fill the disk), a reply that contradicts the announced size fails at once, each file has an
 * overall deadline besides the stall timeout (so a drip of bytes cannot hold the process), and the
 * attempts per file are bounded whatever the server answers.
 *
 * @huggingface/hub's downloadFileToCacheDir does none of these (it rewrites `.incomplete` from zero,
 * takes no lock and checks nothing), hence this file.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, statfs, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fail, MambaError } from '../errors.js';
import { acquireFileLock } from './file-lock.js';
import { fileSize } from './hub-cache.js';
import { backoffMs, parseRetryAfter, type ExpectedDigest } from './hub-http.js';
import { MAX_TIMER_MS, type DownloadProgress, type RetryPolicy } from './hub-settings.js';

export type { DownloadProgress } from './hub-settings.js';
export type { ExpectedDigest } from './hub-http.js';

export interface BlobRequest {
  /** The file's path in the repo, for messages and progress. */
  file: string;
  /** Where to GET the bytes: the resolve URL, or the CDN URL the hub redirected to. */
  url: string;
  /** Authorization (only for the hub's own origin) and user agent. */
  headers: Record<string, string>;
  blobPath: string;
  lockPath: string;
  /** Expected size (X-Linked-Size / Content-Length of the HEAD); else the GET must tell it. */
  size: number | undefined;
  /** The hash the etag names (sha256 of LFS files, git blob sha1 of small ones), when it names one. */
  digest: ExpectedDigest | undefined;
  /** Interrupted transfers retried in this call (an attempt that made progress resets the count). */
  maxRetries: number;
  retry: RetryPolicy;
  /** A transfer that receives nothing for this long counts as interrupted. */
  stallTimeoutMs: number;
  /** The whole file must arrive within max(minMs, size / minBytesPerSecond), all attempts included. */
  deadline: { minMs: number; minBytesPerSecond: number };
  onProgress: ((p: DownloadProgress) => void) | undefined;
  signal: AbortSignal | undefined;
}

/** A transfer that stopped early; the `.incomplete` file keeps what arrived. */
class Interrupted extends Error {
  constructor(
    message: string,
    /** The server's Retry-After, if it gave one. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** The per-file deadline: an abort signal, and the error that names it. */
interface Deadline {
  signal: AbortSignal;
  error(): Promise<MambaError>;
}

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
      await checkDiskSpace(req);
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

/**
 * Refuses a download the disk cannot hold (Python's _check_disk_space only warns; here the size is
 * untrusted, and a full disk harms more than this process), naming both numbers.
 */
async function checkDiskSpace(req: BlobRequest): Promise<void> {
  if (req.size === undefined) return;
  const need = req.size - ((await fileSize(incompletePath(req.blobPath))) ?? 0);
  let free: number;
  try {
    const fs = await statfs(dirname(req.blobPath));
    free = fs.bavail * fs.bsize;
  } catch {
    return; // no statfs here: the size limit on the body still holds
  }
  if (need > free) {
    fail(
      'IO',
      `${req.file} needs ${need} more bytes (the hub announced ${req.size}), but only ${free} are free on ` +
        `${dirname(req.blobPath)}; free some space or point HF_HUB_CACHE elsewhere`,
      { file: req.file, announced: req.size, need, free },
    );
  }
}

/**
 * Brings `.incomplete` to the full, verified contents, retrying interrupted transfers: at most
 * maxRetries in a row that bring nothing, at most 4 * (maxRetries + 1) in all (a server that keeps
 * cutting or contradicting itself cannot keep us busy), all within the file's deadline.
 */
async function fillIncomplete(req: BlobRequest): Promise<void> {
  const incomplete = incompletePath(req.blobPath);
  const limitMs = Math.max(req.deadline.minMs, ((req.size ?? 0) / req.deadline.minBytesPerSecond) * 1000);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Interrupted('deadline')), Math.min(limitMs, MAX_TIMER_MS));
  const deadline: Deadline = {
    signal: controller.signal,
    error: async () => {
      const loaded = (await fileSize(incomplete)) ?? 0;
      return new MambaError(
        'NETWORK',
        `download of ${req.file} from ${req.url} did not finish within its deadline of ${fmtSeconds(limitMs)} ` +
          `(the larger of ${fmtSeconds(req.deadline.minMs)} and its ${req.size ?? '?'} bytes at ` +
          `${req.deadline.minBytesPerSecond} bytes/s; set MAMBA_TS_HUB_DEADLINE / MAMBA_TS_HUB_MIN_SPEED, or the ` +
          `downloadDeadlineMs / minBytesPerSecond options, to allow more); ${loaded} bytes are kept in ${incomplete} ` +
          `and the next run resumes from there`,
        { file: req.file, url: req.url, limitMs, loaded, total: req.size, incomplete },
      );
    },
  };
  const maxAttempts = 4 * (req.maxRetries + 1);
  let failures = 0;
  let restartedAfterBadDigest = false;
  try {
    for (let attempt = 1; ; attempt++) {
      const before = (await fileSize(incomplete)) ?? 0;
      let result: { resumedFrom: number; digest: string | undefined };
      try {
        result = await transfer(req, incomplete, deadline);
      } catch (e) {
        if (!(e instanceof Interrupted)) throw e;
        const after = (await fileSize(incomplete)) ?? 0;
        failures = after > before ? 1 : failures + 1;
        if (failures > req.maxRetries || attempt >= maxAttempts) {
          fail(
            'NETWORK',
            `download of ${req.file} from ${req.url} was interrupted (${e.message}) after ${attempt} ` +
              `attempt${attempt > 1 ? 's' : ''}; ${after}${req.size === undefined ? '' : ` of ${req.size}`} bytes ` +
              `are kept in ${incomplete} and the next run resumes from there`,
            { file: req.file, url: req.url, incomplete, loaded: after, total: req.size, attempts: attempt },
          );
        }
        const waitSignal = req.signal === undefined ? deadline.signal : AbortSignal.any([deadline.signal, req.signal]);
        try {
          await sleep(backoffMs(failures, req.retry, e.retryAfterMs), undefined, { signal: waitSignal });
        } catch (err) {
          if (req.signal?.aborted === true) throw interruptedBy(req);
          throw deadline.signal.aborted ? await deadline.error() : err;
        }
        continue;
      }
      if (req.digest !== undefined && result.digest !== req.digest.hex) {
        await rm(incomplete, { force: true });
        // A kept prefix may have been written by something else (a crashed or concurrent writer that
        // took no lock, e.g. Python): start once from zero before blaming the server.
        if (result.resumedFrom > 0 && !restartedAfterBadDigest) {
          restartedAfterBadDigest = true;
          continue;
        }
        const name = req.digest.algorithm === 'sha256' ? 'sha256' : 'git blob sha1';
        fail(
          'CORRUPT_FILE',
          `${req.file} downloaded from ${req.url} has ${name} ${result.digest}, ` +
            `but the hub announced ${req.digest.hex} ` +
            `(its etag); the partial file was deleted, try again`,
          { file: req.file, url: req.url, expected: req.digest.hex, actual: result.digest },
        );
      }
      return;
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One GET, appending to `.incomplete` from its current length. Returns the digest of the whole file
 * when one is expected. Throws Interrupted for anything a retry could fix, MambaError for the rest.
 */
async function transfer(
  req: BlobRequest,
  incomplete: string,
  deadline: Deadline,
): Promise<{ resumedFrom: number; digest: string | undefined }> {
  let offset = (await fileSize(incomplete)) ?? 0;
  if (req.size !== undefined && offset > req.size) {
    await rm(incomplete, { force: true }); // longer than the file: not a prefix of it
    offset = 0;
  }
  const resumedFrom = offset;
  if (req.size !== undefined && offset === req.size) {
    // Complete already (stopped between the last byte and the rename), or empty: only verify.
    if (offset === 0) await writeFile(incomplete, new Uint8Array(0));
    req.onProgress?.({ file: req.file, loaded: offset, total: req.size });
    const hash = req.digest === undefined ? undefined : await feedFile(incomplete, startDigest(req.digest, offset));
    const digest = hash?.digest('hex');
    return { resumedFrom, digest };
  }

  const stall = new AbortController();
  const signals = [stall.signal, deadline.signal, ...(req.signal === undefined ? [] : [req.signal])];
  const signal = AbortSignal.any(signals);
  let timer: NodeJS.Timeout | undefined;
  const armStall = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => stall.abort(new Interrupted(stallMessage(req))), req.stallTimeoutMs);
  };
  const headers: Record<string, string> = { ...req.headers, 'accept-encoding': 'identity' };
  if (offset > 0) headers['range'] = `bytes=${offset}-`;
  const facts = { file: req.file, url: req.url };

  let fh: FileHandle | undefined;
  try {
    armStall();
    let res: Response;
    try {
      res = await fetch(req.url, { headers, signal, redirect: 'follow' });
    } catch (e) {
      throw await interruption(e, req, deadline);
    }
    if (res.status === 416) {
      await res.body?.cancel();
      await rm(incomplete, { force: true });
      const held = contentRangeTotal(res.headers.get('content-range'));
      if (req.size !== undefined) {
        // We asked from below the announced size: the server's file is shorter than announced.
        fail(
          'CORRUPT_FILE',
          `${req.url} holds ${held ?? `at most ${offset}`} bytes of ${req.file}, but the hub announced ${req.size} ` +
            `(HTTP 416 for bytes from ${offset}); the partial file was deleted`,
          { ...facts, announced: req.size, received: held ?? offset },
        );
      }
      throw new Interrupted('range not satisfiable; the partial file was discarded');
    }
    if (!res.ok) {
      await res.body?.cancel();
      const what = `download of ${req.file} from ${req.url} failed with HTTP ${res.status}`;
      if (res.status === 429 || res.status >= 500) {
        throw new Interrupted(`HTTP ${res.status}`, parseRetryAfter(res.headers.get('retry-after'), Date.now()));
      }
      if (res.status === 401 || res.status === 403) {
        fail('NETWORK', `${what}: access denied; set HF_TOKEN to a token that can read this repository`, {
          ...facts,
          status: res.status,
        });
      }
      fail('NETWORK', what, { ...facts, status: res.status });
    }
    if (offset > 0 && res.status !== 206) offset = 0; // a 200: the server ignored the range, start over
    if (offset > 0 && rangeStart(res.headers.get('content-range')) !== offset) {
      await res.body?.cancel(); // some other part of the file: useless here
      await rm(incomplete, { force: true });
      throw new Interrupted(`asked for bytes from ${offset}, got Content-Range ${res.headers.get('content-range')}`);
    }
    const replySize = announcedSize(res, offset);
    if (req.size !== undefined && replySize !== undefined && replySize !== req.size) {
      await res.body?.cancel();
      await rm(incomplete, { force: true });
      fail(
        'CORRUPT_FILE',
        `${req.url} announces ${replySize} bytes for ${req.file} (Content-Length / Content-Range), but the hub's ` +
          `metadata announced ${req.size}; the partial file was deleted`,
        { ...facts, announced: req.size, received: replySize },
      );
    }
    const total = req.size ?? replySize;
    if (total === undefined) {
      await res.body?.cancel();
      fail(
        'NETWORK',
        `neither the hub's metadata nor ${req.url} tells the size of ${req.file} (no X-Linked-Size or ` +
          `Content-Length): an unbounded download is refused`,
        facts,
      );
    }
    const hash = req.digest === undefined ? undefined : startDigest(req.digest, total);
    fh = await open(incomplete, offset > 0 ? 'a' : 'w');
    if (hash !== undefined && offset > 0) {
      clearTimeout(timer); // hashing a large prefix is not a stall
      await feedFile(incomplete, hash, offset);
      armStall();
    }
    let loaded = offset;
    req.onProgress?.({ file: req.file, loaded, total });
    if (res.body === null && total > offset) throw new Interrupted('empty response');
    try {
      for await (const chunk of res.body ?? []) {
        armStall();
        if (loaded + chunk.byteLength > total) {
          // Stop before writing: the disk never holds more than the announced size.
          await fh.close();
          fh = undefined;
          await rm(incomplete, { force: true });
          fail(
            'CORRUPT_FILE',
            `${req.url} sent more than the ${total} bytes announced for ${req.file} (${loaded + chunk.byteLength} ` +
              `received); the download was stopped and the partial file deleted`,
            { ...facts, announced: total, received: loaded + chunk.byteLength },
          );
        }
        hash?.update(chunk);
        await writeAll(fh, chunk);
        loaded += chunk.byteLength;
        req.onProgress?.({ file: req.file, loaded, total });
      }
    } catch (e) {
      throw await interruption(e, req, deadline);
    }
    await fh.sync(); // the rename that publishes it must not outlive its data after a crash
    if (loaded < total) throw new Interrupted(`the reply ended after ${loaded} of ${total} bytes`);
    return { resumedFrom, digest: hash?.digest('hex') };
  } finally {
    clearTimeout(timer);
    await fh?.close();
  }
}

/** A fetch/stream failure as Interrupted (retryable); INTERRUPTED when the caller aborted; the deadline's error. */
async function interruption(e: unknown, req: BlobRequest, deadline: Deadline): Promise<Error> {
  if (req.signal?.aborted === true) return interruptedBy(req);
  if (e instanceof MambaError) return e;
  if (deadline.signal.aborted) return deadline.error();
  if (e instanceof Interrupted) return e;
  const err = e as Error & { cause?: { message?: string } };
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return new Interrupted(err.message);
  return new Interrupted(err.cause?.message ?? err.message);
}

function interruptedBy(req: BlobRequest): MambaError {
  return new MambaError(
    'INTERRUPTED',
    `download of ${req.file} was stopped; the partial file ${incompletePath(req.blobPath)} is resumed next time`,
    { file: req.file },
  );
}

function stallMessage(req: BlobRequest): string {
  return `no data for ${req.stallTimeoutMs / 1000} s (HF_HUB_DOWNLOAD_TIMEOUT or the timeoutMs option)`;
}

function fmtSeconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/** A hash of the whole file, as its etag defines it: git's blob id hashes a header first. */
function startDigest(d: ExpectedDigest, size: number): Hash {
  if (d.algorithm === 'sha256') return createHash('sha256');
  return createHash('sha1').update(`blob ${size}\0`);
}

function rangeStart(contentRange: string | null): number {
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(contentRange?.trim() ?? '');
  return m === null ? -1 : Number(m[1]);
}

/** The N of `bytes a-b/N` or `bytes *\/N`. */
function contentRangeTotal(contentRange: string | null): number | undefined {
  const m = /\/(\d+)$/.exec(contentRange?.trim() ?? '');
  return m === null ? undefined : Number(m[1]);
}

/** The whole file's size as this reply tells it: Content-Range's total, else Content-Length plus the offset. */
function announcedSize(res: Response, offset: number): number | undefined {
  if (res.status === 206) {
    const total = contentRangeTotal(res.headers.get('content-range'));
    if (total !== undefined) return total;
  }
  const text = res.headers.get('content-length');
  return text !== null && /^\d+$/.test(text.trim()) ? Number(text) + offset : undefined;
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
  if (length === 0) return hash;
  const stream = createReadStream(path, length === undefined ? {} : { start: 0, end: length - 1 });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash;
}
