import type { StoredDType, TensorEntry, TensorSource } from '../../src/io/tensor-source.js';
import { STORED_DTYPE_BYTES } from '../../src/io/tensor-source.js';

/**
 * A minimal safetensors reader over bytes already in memory, for tests only (also loaded by the
 * browser test page, so it imports nothing from Node). Format: u64 LE header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}}, then the data.
 */
export function safetensorsFromBytes(bytes: Uint8Array, description: string): TensorSource {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { dtype: StoredDType; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + n;
  const entries = new Map<string, TensorEntry>();
  const where = new Map<string, [number, number]>();
  let metadata: Record<string, string> = {};
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') { metadata = h as unknown as Record<string, string>; continue; }
    const byteLength = h.data_offsets[1] - h.data_offsets[0];
    const count = h.shape.reduce((a, b) => a * b, 1);
    if (count * STORED_DTYPE_BYTES[h.dtype] !== byteLength) throw new Error(`${description}: ${name} has ${byteLength} bytes for shape ${h.shape}`);
    entries.set(name, { name, dtype: h.dtype, shape: h.shape, byteLength });
    where.set(name, [base + h.data_offsets[0], base + h.data_offsets[1]]);
  }
  return {
    description,
    entries,
    metadata,
    async read(name: string, dest?: Uint8Array): Promise<Uint8Array> {
      const w = where.get(name);
      if (!w) throw new Error(`${description}: no tensor ${name}`);
      const src = bytes.subarray(w[0], w[1]);
      if (dest) { dest.set(src); return dest; }
      return src.slice();
    },
    async close(): Promise<void> {},
  };
}

/** An F32 or I32 tensor of a source as a typed array. */
export async function readArray(src: TensorSource, name: string): Promise<Float32Array | Int32Array> {
  const e = src.entries.get(name);
  if (!e) throw new Error(`${src.description}: no tensor ${name}`);
  const b = await src.read(name);
  if (e.dtype === 'F32') return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  if (e.dtype === 'I32') return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  throw new Error(`${src.description}: ${name} is ${e.dtype}`);
}
