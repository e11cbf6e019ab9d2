import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StoredDType, TensorEntry, TensorSource } from '../../src/io/tensor-source.js';
import { STORED_DTYPE_BYTES } from '../../src/io/tensor-source.js';
import { parseConfig, type MambaConfig } from '../../src/models/config.js';

/**
 * A test-only safetensors reader (whole file in memory, one file, no validation beyond the basics)
 * for the WebAssembly/pool tests, written before the project's reader landed on this branch. Format:
 * u64 little-endian header length, JSON header {name: {dtype, shape, data_offsets}}, then the data.
 */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const PARITY = join(ROOT, 'fixtures', 'parity');

export async function readSafetensors(path: string): Promise<TensorSource> {
  const buf = new Uint8Array(await readFile(path));
  const n = Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n))) as Record<string, { dtype: StoredDType; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + n;
  const entries = new Map<string, TensorEntry & { off: number }>();
  let metadata: Record<string, string> = {};
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') { metadata = h as unknown as Record<string, string>; continue; }
    const byteLength = h.shape.reduce((a, b) => a * b, 1) * STORED_DTYPE_BYTES[h.dtype];
    entries.set(name, { name, dtype: h.dtype, shape: h.shape, byteLength, off: base + h.data_offsets[0] });
  }
  return {
    description: path,
    entries,
    metadata,
    async read(name: string): Promise<Uint8Array> {
      const e = entries.get(name);
      if (!e) throw new Error(`${path}: no tensor ${name}`);
      return buf.slice(e.off, e.off + e.byteLength);
    },
    async close(): Promise<void> {},
  };
}

export async function readConfig(dir: string): Promise<MambaConfig> {
  return parseConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')), join(dir, 'config.json'));
}

export interface Expected {
  ids: Int32Array; // (b, l)
  b: number;
  l: number;
  logits: Float32Array; // (b, l, V)
  V: number;
}

export async function readExpected(name: string): Promise<Expected> {
  const src = await readSafetensors(join(PARITY, name, 'expected.safetensors'));
  const ids = src.entries.get('input_ids')!;
  const lg = src.entries.get('logits')!;
  const ib = await src.read('input_ids'), lb = await src.read('logits');
  return {
    ids: new Int32Array(ib.buffer, ib.byteOffset, ib.byteLength / 4),
    b: ids.shape[0]!, l: ids.shape[1]!,
    logits: new Float32Array(lb.buffer, lb.byteOffset, lb.byteLength / 4),
    V: lg.shape[2]!,
  };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Deterministic uniform values in [-scale, scale). */
export function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}
