/** Shared bits of the safetensors I/O tests: hand-built (possibly corrupt) files, temp dirs, the repo root. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ByteSource } from '../../src/io/byte-source.js';

/** The repository root (tests run from dist/test/io). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** `8-byte length + header + data`, with the length field overridable to build corrupt files. */
export function rawSafetensors(
  header: string | Uint8Array,
  data: Uint8Array = new Uint8Array(0),
  lengthField?: bigint,
): Uint8Array {
  const json = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

/** A ByteSource wrapper that records every read, to check what a reader touches. */
export function countingSource(inner: ByteSource): {
  source: ByteSource;
  reads: Array<[offset: number, length: number]>;
  closed: () => boolean;
} {
  const reads: Array<[number, number]> = [];
  let closed = false;
  return {
    reads,
    closed: () => closed,
    source: {
      size: inner.size,
      description: inner.description,
      read(offset, length, dest) {
        reads.push([offset, length]);
        return inner.read(offset, length, dest);
      },
      async close() {
        closed = true;
        await inner.close();
      },
    },
  };
}

export async function withTempDir<R>(fn: (dir: string) => Promise<R>): Promise<R> {
  const dir = await mkdtemp(join(tmpdir(), 'mamba-ts-io-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}
