/**
 * Random access to the bytes of one file-like thing (a local file, a URL, a buffer in memory), so
 * readers can pull one header or one tensor at a time and never hold a multi-GB file in one buffer.
 * This module is browser-safe; the Node file source lives in `./node/file-source.ts`.
 */
import { fail } from '../errors.js';

export interface ByteSource {
  /** Total bytes. */
  readonly size: number;
  /** A path, URL or label, for messages. */
  readonly description: string;
  /**
   * Reads exactly `length` bytes starting at `offset` into `dest` (which must be exactly `length`
   * bytes) or into a new buffer. A range past the end throws CORRUPT_FILE (the file is truncated).
   */
  read(offset: number, length: number, dest?: Uint8Array): Promise<Uint8Array>;
  /** Releases the handle; later reads throw. */
  close(): Promise<void>;
}

/**
 * The checks every `ByteSource.read` makes before touching its backing store: the range is made of
 * non-negative integers, lies inside the source (else the file is truncated), the source is open,
 * and `dest` has the right size. Returns the buffer to fill.
 */
export function beginRead(
  source: { readonly size: number; readonly description: string },
  closed: boolean,
  offset: number,
  length: number,
  dest: Uint8Array | undefined,
): Uint8Array {
  const file = source.description;
  if (closed) fail('BAD_ARGUMENT', `${file} is closed; open it again to read from it`, { file });
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    fail(
      'BAD_ARGUMENT',
      `read from ${file}: offset and length must be non-negative integers, got offset ${offset}, length ${length}`,
      { file, offset, length },
    );
  }
  if (offset + length > source.size) {
    fail(
      'CORRUPT_FILE',
      `${file} is truncated: expected ${length} bytes at offset ${offset}, file has ${source.size}`,
      {
        file,
        offset,
        length,
        size: source.size,
      },
    );
  }
  if (dest !== undefined && dest.byteLength !== length) {
    fail('BAD_ARGUMENT', `read from ${file}: destination buffer has ${dest.byteLength} bytes, expected ${length}`, {
      file,
      expected: length,
      actual: dest.byteLength,
    });
  }
  return dest ?? new Uint8Array(length);
}

/** A ByteSource over bytes already in memory (browser uploads, tests). Reads copy, so callers may mutate what they get. */
export function memorySource(bytes: Uint8Array, description = `${bytes.byteLength}-byte buffer`): ByteSource {
  let closed = false;
  const source: ByteSource = {
    size: bytes.byteLength,
    description,
    async read(offset, length, dest) {
      const out = beginRead(source, closed, offset, length, dest);
      out.set(bytes.subarray(offset, offset + length));
      return out;
    },
    async close() {
      closed = true;
    },
  };
  return source;
}
