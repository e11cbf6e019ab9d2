/**
 * Reading safetensors checkpoints from any ByteSource: the header is read and validated at open,
 * tensor data only when `read(name)` asks for that one tensor. Browser-safe; the Node path
 * convenience is `openSafetensorsFile` in `./node/safetensors-file.ts`.
 */
import { fail, fmtShape } from '../errors.js';
import type { ByteSource } from './byte-source.js';
import { parseSafetensorsHeader, SAFETENSORS_MAX_HEADER_BYTES, type SafetensorsHeader } from './safetensors-header.js';
import type { TensorSource } from './tensor-source.js';
import { failUnknownTensor } from './unknown-tensor.js';

/** Bytes of the little-endian u64 that gives the JSON header's length. */
const LENGTH_PREFIX_BYTES = 8;

async function readHeader(source: ByteSource): Promise<{ header: SafetensorsHeader; dataStart: number }> {
  const file = source.description;
  if (source.size < LENGTH_PREFIX_BYTES) {
    fail(
      'CORRUPT_FILE',
      `${file} is not a safetensors file: it has ${source.size} bytes, fewer than the 8-byte header length`,
      {
        file,
        size: source.size,
      },
    );
  }
  const prefix = await source.read(0, LENGTH_PREFIX_BYTES);
  const n = new DataView(prefix.buffer, prefix.byteOffset, LENGTH_PREFIX_BYTES).getBigUint64(0, true);
  if (n > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
    fail(
      'CORRUPT_FILE',
      `${file} is not a valid safetensors file: its header length ${n} bytes is over the 100 MB limit`,
      {
        file,
        headerLength: n.toString(),
      },
    );
  }
  const headerLength = Number(n);
  const dataStart = LENGTH_PREFIX_BYTES + headerLength;
  if (dataStart > source.size) {
    fail(
      'CORRUPT_FILE',
      `${file} is truncated: its header needs ${headerLength} bytes after the 8-byte length, the file has ${source.size - LENGTH_PREFIX_BYTES}`,
      {
        file,
        headerLength,
        size: source.size,
      },
    );
  }
  const json = await source.read(LENGTH_PREFIX_BYTES, headerLength);
  return { header: parseSafetensorsHeader(json, source.size - dataStart, file), dataStart };
}

/**
 * Opens a safetensors file. Takes ownership of `source`: it is closed when the returned TensorSource
 * is closed, or right away if the header is invalid. Reads only the header here.
 */
export async function openSafetensors(source: ByteSource): Promise<TensorSource> {
  let parsed: Awaited<ReturnType<typeof readHeader>>;
  try {
    parsed = await readHeader(source);
  } catch (e) {
    await source.close().catch(() => undefined);
    throw e;
  }
  const { header, dataStart } = parsed;
  const file = source.description;
  return {
    description: file,
    entries: header.entries,
    metadata: header.metadata,
    storedBytes: source.size,
    async read(name, dest) {
      const entry = header.entries.get(name) ?? failUnknownTensor(file, name, header.entries.keys());
      if (dest !== undefined && dest.byteLength !== entry.byteLength) {
        fail(
          'BAD_ARGUMENT',
          `${file}: tensor "${name}" (${entry.dtype} ${fmtShape(entry.shape)}) has ${entry.byteLength} bytes, the destination buffer has ${dest.byteLength}`,
          {
            file,
            tensor: name,
            expected: entry.byteLength,
            actual: dest.byteLength,
          },
        );
      }
      return source.read(dataStart + entry.begin, entry.byteLength, dest);
    },
    close: () => source.close(),
  };
}
