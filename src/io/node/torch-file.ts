/** Opens a `torch.save` checkpoint on the local disk (Node only): positional reads through one FileHandle. */
import { open, type FileHandle } from 'node:fs/promises';
import { fail } from '../../errors.js';
import { openTorchCheckpoint, type ByteSource, type TorchCheckpoint } from '../torch-checkpoint.js';

// Node refuses a single read of 2 GiB or more; larger ranges are read in pieces.
const MAX_READ = 1 << 30;

export async function openTorchCheckpointFile(path: string): Promise<TorchCheckpoint> {
  return openTorchCheckpoint(await openFileByteSource(path));
}

/** A ByteSource over a local file. */
export async function openFileByteSource(path: string): Promise<ByteSource> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') fail('FILE_NOT_FOUND', `file not found: ${path}`, { file: path });
    throw e;
  }
  let size: number;
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) fail('BAD_ARGUMENT', `${path} is ${stats.isDirectory() ? 'a directory' : 'not a regular file'}, expected a checkpoint file`, { file: path });
    size = stats.size;
  } catch (e) {
    await handle.close();
    throw e;
  }

  let closed = false;
  return {
    size,
    description: path,
    async read(offset: number, length: number): Promise<Uint8Array> {
      if (closed) fail('BAD_ARGUMENT', `${path} is closed`, { file: path });
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
        fail('BAD_ARGUMENT', `read from ${path}: offset ${offset} and length ${length} must be non-negative integers`, { file: path });
      }
      if (offset + length > size) {
        fail('CORRUPT_FILE', `${path} is truncated: expected ${length} bytes at offset ${offset}, the file has ${size}`, { file: path, offset, length, size });
      }
      const out = new Uint8Array(length);
      for (let done = 0; done < length; ) {
        const { bytesRead } = await handle.read(out, done, Math.min(length - done, MAX_READ), offset + done);
        // Nothing read before the range is full: the file shrank after it was opened.
        if (bytesRead === 0) fail('CORRUPT_FILE', `${path} is truncated: it ends at byte ${offset + done}, expected ${offset + length}`, { file: path });
        done += bytesRead;
      }
      return out;
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}
