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
 */
import { copyFile, lstat, mkdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, relative } from 'node:path';
import { getRepoFolderName } from '@huggingface/hub';

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
    await mkdir(dirname(ref), { recursive: true });
    await writeAtomically(ref, commit);
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
    await mkdir(dirname(pointer), { recursive: true });
    const tmp = `${pointer}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      try {
        await symlink(relative(dirname(pointer), blob), tmp);
      } catch {
        await copyFile(blob, tmp); // no symlinks here (Windows without developer mode, some FUSE mounts)
      }
      await rename(tmp, pointer);
    } finally {
      await rm(tmp, { force: true });
    }
    return pointer;
  }
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
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, text);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}
