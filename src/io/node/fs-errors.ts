import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isMambaError, MambaError } from '../../errors.js';

// File-system failures as users read them: error[IO] naming what was being done, the path and why.

/**
 * `mkdir -p`, with the real reason of a failure: node's recursive mkdir reports a read-only file
 * system (EROFS) as ENOENT, so on ENOENT the last step is retried alone to learn why.
 */
export async function makeDir(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    if (dirname(path) !== path) await makeDir(dirname(path));
    try {
      await mkdir(path);
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code !== 'EEXIST') throw e2;
    }
  }
}

const ERRNO_TEXT: Record<string, string> = {
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exceeded',
  ENOTDIR: 'a part of the path is a file, not a directory',
  ENAMETOOLONG: 'the path or one of its names is too long',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a directory, expected a file',
  EEXIST: 'it already exists',
  ENOTEMPTY: 'the directory is not empty',
  EXDEV: 'a rename cannot cross a file-system boundary (mount point)',
  EBUSY: 'it is busy (a mount point?)',
  EMFILE: 'too many open files',
  EIO: 'an input/output error of the device',
  ENOENT: 'no such file or directory',
  ELOOP: 'too many symbolic links',
};

/** A Node file-system error as it reads to a user: what was being done, on which path, why (`code`). */
export function describeFsError(e: NodeJS.ErrnoException): string | undefined {
  const why = e.code ? ERRNO_TEXT[e.code] : undefined;
  if (!why) return undefined;
  const dest = (e as { dest?: string }).dest;
  const where = `${e.syscall ? ` in ${e.syscall}` : ''}${e.path ? ` ${e.path}` : ''}${dest ? ` -> ${dest}` : ''}`;
  return `${why} (${e.code}${where})`;
}

/** A file-system error as MambaError IO (FILE_NOT_FOUND for ENOENT); other errors unchanged. */
export function ioError(e: unknown, doing: string, after?: string): unknown {
  if (isMambaError(e) || !(e instanceof Error)) return e;
  const err = e as NodeJS.ErrnoException;
  const why = describeFsError(err);
  if (!why) return e;
  return new MambaError(
    err.code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'IO',
    `${doing}: ${why}${after ? `; ${after}` : ''}`,
    {
      path: err.path,
      errno: err.code,
      syscall: err.syscall,
    },
  );
}
