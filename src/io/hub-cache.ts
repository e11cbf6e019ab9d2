/**
 * The Hugging Face hub cache on disk, laid out exactly as Python's `huggingface_hub` lays it out
 * (file_download.py: `hf_hub_download`, `try_to_load_from_cache`), so that a cache filled by Python is
 * reused by mamba-ts and the other way round:
 *
 *   <cache>/models--{org}--{name}/
 *     blobs/<etag>                      file contents, named by git-sha1 (small files) or sha256 (LFS)
 *     blobs/<etag>.incomplete           a download in progress (resumed from its length)
 *     snapshots/<commit>/<filename>     relative symlink to ../../blobs/<etag> (a copy without symlinks)
 *     refs/<revision>                   the commit sha a branch or tag pointed to, no newline
 *     .no_exist/<commit>/<filename>     empty file: this file does not exist at that commit
 *   <cache>/.locks/models--{org}--{name}/<etag>.mamba-ts.lock   our download lock (see file-lock.ts)
 *
 * Refs and snapshot links are written under `<name>.tmp-<pid>-<random>` and renamed into place; a
 * process killed in between leaves that name behind, which the next download removes (once its
 * process is gone).
 */
import { copyFile, lstat, mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, relative } from 'node:path';
import { getRepoFolderName } from '@huggingface/hub';
import { fail } from '../errors.js';
import { isProcessAlive } from './file-lock.js';

export const COMMIT_SHA = /^[0-9a-f]{40}$/;

/** Paths of one model repo inside the cache. */
export class RepoCache {
  /** `<cache>/models--org--name`. */
  readonly cacheDir: string;
  readonly repoId: string;
  readonly dir: string;
  readonly locksDir: string;

  constructor(cacheDir: string, repoId: string) {
    this.cacheDir = cacheDir;
    this.repoId = repoId;
    // The same function @huggingface/hub's own cache scanner uses: `models--` + id with '/' -> '--'.
    const folder = getRepoFolderName({ type: 'model', name: repoId });
    this.dir = join(cacheDir, folder);
    this.locksDir = join(cacheDir, '.locks', folder);
  }

  blob(etag: string): string {
    return join(this.dir, 'blobs', etag);
  }

  snapshotDir(commit: string): string {
    return join(this.dir, 'snapshots', commit);
  }

  /** Where `filename` (a repo path with '/' separators) appears in the snapshot of `commit`. */
  pointer(commit: string, filename: string): string {
    return join(this.snapshotDir(commit), ...filename.split('/'));
  }

  noExistMarker(commit: string, filename: string): string {
    return join(this.dir, '.no_exist', commit, ...filename.split('/'));
  }

  lock(etag: string): string {
    return join(this.locksDir, `${etag}.mamba-ts.lock`);
  }

  /** The commit `revision` resolves to from the cache alone: itself if it is a commit sha, else refs/<revision>. */
  async commitFor(revision: string): Promise<string | undefined> {
    if (COMMIT_SHA.test(revision)) return revision;
    try {
      const sha = (await readFile(join(this.dir, 'refs', ...revision.split('/')), 'utf8')).trim();
      return COMMIT_SHA.test(sha) ? sha : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Records that `revision` points at `commit` (Python does this only for branch and tag names, never
   * for a commit sha). Written to a temporary name and renamed so a reader never sees half a sha.
   */
  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    const ref = join(this.dir, 'refs', ...revision.split('/'));
    try {
      if ((await readFile(ref, 'utf8')) === commit) return; // unchanged: do not rewrite (read-only caches)
    } catch {
      // absent: write it below
    }
    try {
      await mkdir(dirname(ref), { recursive: true });
      await writeAtomically(ref, commit);
    } catch (e) {
      if (!isPathConflict(e)) throw e;
      // git forbids refs `a` and `a/b` at once, so one of the two in the cache is of a deleted branch.
      fail(
        'CORRUPT_FILE',
        `revision "${revision}" cannot be recorded as ${ref}: a ref of another revision is in the way (refs ` +
          `"a" and "a/b" cannot both exist, as in git); one of them is of a deleted branch: remove the stale one ` +
          `under ${join(this.dir, 'refs')} and run again`,
        { revision, path: ref },
      );
    }
  }

  async hasPointer(commit: string, filename: string): Promise<boolean> {
    return isFile(this.pointer(commit, filename));
  }

  async isMarkedMissing(commit: string, filename: string): Promise<boolean> {
    return isFile(this.noExistMarker(commit, filename));
  }

  /** Best effort: the marker only saves a request next time (and a shared cache may be read-only). */
  async markMissing(commit: string, filename: string): Promise<void> {
    const marker = this.noExistMarker(commit, filename);
    try {
      await mkdir(dirname(marker), { recursive: true });
      await writeFile(marker, '');
    } catch {
      // not recorded: the next run asks the hub again
    }
  }

  /**
   * Makes snapshots/<commit>/<filename> point at blobs/<etag>: a relative symlink (so a moved cache
   * still works, as in Python's `_create_symlink`), or a copy where the filesystem refuses symlinks.
   * Built under a temporary name and renamed over the final one, so the pointer is never missing or
   * dangling for a concurrent reader.
   */
  async link(commit: string, filename: string, etag: string): Promise<string> {
    const pointer = this.pointer(commit, filename);
    const blob = this.blob(etag);
    const tmp = tempName(pointer);
    try {
      await mkdir(dirname(pointer), { recursive: true });
      try {
        await symlink(relative(dirname(pointer), blob), tmp);
      } catch (e) {
        if (isPathConflict(e)) throw e;
        await copyFile(blob, tmp); // no symlinks here (Windows without developer mode, some FUSE mounts)
      }
      await rename(tmp, pointer);
    } catch (e) {
      if (!isPathConflict(e)) throw e;
      fail(
        'CORRUPT_FILE',
        `${filename} cannot be placed at ${pointer}: another file of the snapshot is in the way (a path cannot be ` +
          `both a file and a folder)`,
        { file: filename, path: pointer },
      );
    } finally {
      await rm(tmp, { force: true });
    }
    return pointer;
  }

  /**
   * Removes what writers killed between writing and renaming left (`*.tmp-<pid>-…` under refs/ and
   * snapshots/): only for processes that no longer exist here, and only names older than a minute
   * (a cache shared with another host may hold its live temporaries, which exist for milliseconds).
   * Best effort: a cache we may not write is left as it is.
   */
  async removeStaleTemps(): Promise<void> {
    const now = Date.now();
    const visit = async (dir: string, depth: number): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        const path = join(dir, entry.name);
        const m = TEMP_NAME.exec(entry.name);
        if (m !== null) {
          const pid = Number(m[1]);
          try {
            if (pid !== process.pid && !isProcessAlive(pid) && now - (await lstat(path)).mtimeMs > STALE_TEMP_MS) {
              await rm(path, { recursive: true, force: true });
            }
          } catch {
            // gone meanwhile, or not ours to remove
          }
        } else if (entry.isDirectory() && depth < 32) {
          await visit(path, depth + 1);
        }
      }
    };
    for (const top of ['refs', 'snapshots']) await visit(join(this.dir, top), 0);
  }
}

/** `<name>.tmp-<pid>-<random>`: the pid says whose it is; the random part keeps concurrent calls apart. */
const TEMP_NAME = /\.tmp-(\d{1,10})(?:-[0-9a-f]{12})?$/;
const STALE_TEMP_MS = 60_000;

function tempName(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** A path that is a file where a folder is needed, or the other way round. */
function isPathConflict(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST' || code === 'ENOTEMPTY';
}

/** True for a regular file, following symlinks (a dangling snapshot link is not a file). */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Size of a file, or undefined when absent (not following symlinks: used on blobs). */
export async function fileSize(path: string): Promise<number | undefined> {
  try {
    const s = await lstat(path);
    return s.isFile() ? s.size : undefined;
  } catch {
    return undefined;
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = tempName(path);
  try {
    await writeFile(tmp, text);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}
