/** Safetensors files on a local disk (Node only): open by path, and write atomically without building the file in memory. */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fail } from '../../errors.js';
import { openSafetensors } from '../safetensors.js';
import { layoutSafetensors, type TensorToWrite } from '../safetensors-writer.js';
import type { TensorSource } from '../tensor-source.js';
import { openFileSource } from './file-source.js';

// Largest single write: Node refuses buffers over 2 GiB - 1 in one call.
const MAX_WRITE_CHUNK = 1 << 30;

export async function openSafetensorsFile(path: string): Promise<TensorSource> {
  return openSafetensors(await openFileSource(path));
}

/**
 * Writes a safetensors file (layout as `encodeSafetensors`). Atomic: the bytes go to
 * `path.tmp-<pid>`, are fsynced, and the temporary file is renamed over `path`, so a crash leaves
 * either the old file or the complete new one, never a torn checkpoint. Each tensor's bytes are
 * written from the caller's buffer; nothing is concatenated.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const layout = layoutSafetensors(tensors, metadata);
  const tmp = `${path}.tmp-${process.pid}`;
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, 'w');
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT') {
      fail('FILE_NOT_FOUND', `cannot write ${path}: directory ${dirname(path)} does not exist`, { file: path });
    }
    throw e;
  }
  try {
    let position = 0;
    for (const chunk of [layout.header, ...layout.chunks]) {
      let done = 0;
      while (done < chunk.byteLength) {
        const { bytesWritten } = await handle.write(
          chunk,
          done,
          Math.min(chunk.byteLength - done, MAX_WRITE_CHUNK),
          position,
        );
        done += bytesWritten;
        position += bytesWritten;
      }
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(tmp, path);
  } catch (e) {
    await handle?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await syncDirectory(dirname(path));
}

/** Makes the rename itself durable on POSIX; best effort, as some platforms (Windows) cannot open directories. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Durability of the directory entry is a bonus; the file itself is complete and fsynced.
  }
}
