/** A ByteSource over a local file, read with positional reads through one FileHandle (Node only). */
import { open, type FileHandle } from 'node:fs/promises';
import { fail } from '../../errors.js';
import { beginRead, type ByteSource } from '../byte-source.js';

// One positional read moves at most this many bytes: Node refuses reads over 2 GiB - 1 in one call.
const MAX_READ_CHUNK = 1 << 30;

function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

export async function openFileSource(path: string): Promise<ByteSource> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') fail('FILE_NOT_FOUND', `file not found: ${path}`, { file: path });
    if (code === 'EISDIR') fail('BAD_ARGUMENT', `${path} is a directory, expected a file`, { file: path });
    throw e;
  }
  let size: number;
  try {
    const stats = await handle.stat();
    if (stats.isDirectory()) fail('BAD_ARGUMENT', `${path} is a directory, expected a file`, { file: path });
    if (!stats.isFile()) fail('BAD_ARGUMENT', `${path} is not a regular file`, { file: path });
    size = stats.size;
  } catch (e) {
    await handle.close();
    throw e;
  }

  let closed = false;
  const source: ByteSource = {
    size,
    description: path,
    async read(offset, length, dest) {
      const out = beginRead(source, closed, offset, length, dest);
      let done = 0;
      while (done < length) {
        const want = Math.min(length - done, MAX_READ_CHUNK);
        const { bytesRead } = await handle.read(out, done, want, offset + done);
        // A read that returns nothing before the range is full: the file shrank after it was opened.
        if (bytesRead === 0) {
          fail(
            'CORRUPT_FILE',
            `${path} is truncated: expected ${length} bytes at offset ${offset}, file has ${offset + done}`,
            {
              file: path,
              offset,
              length,
              size: offset + done,
            },
          );
        }
        done += bytesRead;
      }
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
  return source;
}
