/**
 * A lock shared by processes (and by concurrent calls in one process): a file created with O_EXCL
 * ('wx'), holding who owns it. Node has no flock(2), so this cannot share Python's `filelock` locks;
 * it is the usual lock-file protocol instead:
 * - the holder touches the file's mtime every staleMs/3 (a heartbeat);
 * - a waiter takes over a lock whose holder is a dead process on this host, or whose heartbeat is
 *   older than staleMs (a holder that died on another host sharing the cache, e.g. over NFS);
 * - a take-over removes the file only if it still holds exactly what was judged stale, so two
 *   waiters cannot both break it and then delete each other's fresh lock (a microsecond race remains
 *   between the re-read and the removal; callers that write shared files also verify before publishing).
 */
import { mkdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface FileLock {
  readonly path: string;
  /** Whether the lock file still names us (false only if a waiter judged us stale and took over). */
  isHeld(): Promise<boolean>;
  /** Stops the heartbeat and removes the lock file if it is still ours. Safe to call twice. */
  release(): Promise<void>;
}

export interface FileLockOptions {
  /** A lock whose heartbeat is older than this many milliseconds is taken over (default 30 000). */
  staleMs?: number;
  /** How often a waiter looks at the lock again (default 100 ms). */
  pollMs?: number;
  /** Stops waiting (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Called once, when the lock is found held by someone else, with the holder's description. */
  onWait?: (holder: string) => void;
}

interface Holder {
  pid?: number;
  host?: string;
  token?: string;
}

export async function acquireFileLock(path: string, opts: FileLockOptions = {}): Promise<FileLock> {
  const staleMs = opts.staleMs ?? 30_000;
  const pollMs = opts.pollMs ?? 100;
  const token = randomUUID();
  const text = JSON.stringify({ pid: process.pid, host: hostname(), token, since: new Date().toISOString() });
  await mkdir(dirname(path), { recursive: true });

  let announced = false;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      await writeFile(path, text, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const seen = await look(path);
    if (seen === undefined) continue; // released between our attempt and our look
    if (isStale(seen, staleMs)) {
      const again = await look(path);
      if (again !== undefined && again.text === seen.text) await rm(path, { force: true });
      continue;
    }
    if (!announced) {
      announced = true;
      opts.onWait?.(describe(seen.text));
    }
    await sleep(pollMs, undefined, opts.signal === undefined ? {} : { signal: opts.signal });
  }

  const heartbeat = setInterval(
    () => {
      const now = new Date();
      utimes(path, now, now).catch(() => undefined);
    },
    Math.max(1, Math.floor(staleMs / 3)),
  );
  heartbeat.unref();

  const isHeld = async (): Promise<boolean> => (await look(path))?.text === text;
  let released = false;
  return {
    path,
    isHeld,
    async release() {
      if (released) return;
      released = true;
      clearInterval(heartbeat);
      if (await isHeld()) await rm(path, { force: true });
    },
  };
}

async function look(path: string): Promise<{ text: string; mtimeMs: number } | undefined> {
  try {
    const [text, s] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { text, mtimeMs: s.mtimeMs };
  } catch {
    return undefined;
  }
}

function isStale(seen: { text: string; mtimeMs: number }, staleMs: number): boolean {
  if (Date.now() - seen.mtimeMs > staleMs) return true;
  const holder = parse(seen.text);
  // A lock file caught between its creation and its first write reads empty: young, so not stale.
  return holder?.host === hostname() && typeof holder.pid === 'number' && !isProcessAlive(holder.pid);
}

/** Whether a process with this id exists on this host. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: existence check only
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
}

function parse(text: string): Holder | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? (v as Holder) : undefined;
  } catch {
    return undefined;
  }
}

function describe(text: string): string {
  const h = parse(text);
  return h === undefined ? 'another process' : `process ${h.pid ?? '?'} on ${h.host ?? '?'}`;
}
