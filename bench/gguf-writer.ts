/**
 * A small GGUF (version 3) writer, for handing llama.cpp the same random weights that mamba-ts reads
 * from safetensors (bench/llama-cpp-side-by-side.ts). Written from the format's description
 * (llama.cpp's docs/gguf.md): a header, the key-value metadata, the tensor infos, then each
 * tensor's data at an aligned offset. Tensors are streamed to the file one at a time, so a model
 * larger than memory can be written.
 *
 * Element types: F32, F16, and the two block formats Q8_0 (blocks of 32: an f16 scale and 32 int8)
 * and Q4_0 (blocks of 32: an f16 scale and 32 4-bit values offset by 8), quantised here from f32
 * the way ggml's reference quantisers do (nearest rounding for Q8_0; for Q4_0 the scale is the
 * signed value of largest magnitude over -8, values truncated after adding 8.5).
 */
import { closeSync, openSync, renameSync, writeSync } from 'node:fs';
import { f16ToF32Table, f32ToF16Bits } from '../src/tensor/dtype.js';

/** ggml element types written here (ggml.h's enum values). */
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const;
export type GgmlType = keyof typeof GGML_TYPE;

const BLOCK = 32;
/** Bytes per block of 32 elements (or per element for F32/F16 times 32). */
const BLOCK_BYTES: Record<GgmlType, number> = { F32: 4 * BLOCK, F16: 2 * BLOCK, Q4_0: 2 + BLOCK / 2, Q8_0: 2 + BLOCK };

/** Metadata value kinds (gguf_type). */
const T = { UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9 } as const;

export type GgufValue =
  | { u32: number }
  | { f32: number }
  | { bool: boolean }
  | { str: string }
  | { u32s: readonly number[] }
  | { i32s: readonly number[] }
  | { f32s: ArrayLike<number> }
  | { strs: readonly string[] };

export interface GgufTensor {
  name: string;
  /** Shape in PyTorch order (outermost first); GGUF stores it reversed (ne0 = the last dimension). */
  shape: readonly number[];
  type: GgmlType;
  /**
   * The values, row-major in `shape`, produced when the tensor is written (one tensor in memory at a
   * time): f32 values, or f16 bit patterns (written as they are for F16, widened for the others).
   */
  data: () => Float32Array | Uint16Array;
}

/** Bytes a tensor of this shape and type takes. */
export function tensorBytes(shape: readonly number[], type: GgmlType): number {
  const n = shape.reduce((a, b) => a * b, 1);
  if (type === 'F32') return 4 * n;
  if (type === 'F16') return 2 * n;
  if (shape[shape.length - 1] % BLOCK) throw new Error(`${type} needs rows that are a multiple of ${BLOCK} long`);
  return (n / BLOCK) * BLOCK_BYTES[type];
}

/** A growing little-endian byte buffer for the header part. */
class Bytes {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.room(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number): void {
    this.room(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  f32(v: number): void {
    this.room(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.length++] = v;
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  pad(align: number): void {
    while (this.length % align) this.u8(0);
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function writeValue(b: Bytes, v: GgufValue): void {
  if ('u32' in v) {
    b.u32(T.UINT32);
    b.u32(v.u32);
  } else if ('f32' in v) {
    b.u32(T.FLOAT32);
    b.f32(v.f32);
  } else if ('bool' in v) {
    b.u32(T.BOOL);
    b.u8(v.bool ? 1 : 0);
  } else if ('str' in v) {
    b.u32(T.STRING);
    b.str(v.str);
  } else {
    b.u32(T.ARRAY);
    if ('u32s' in v) {
      b.u32(T.UINT32);
      b.u64(v.u32s.length);
      for (const x of v.u32s) b.u32(x);
    } else if ('i32s' in v) {
      b.u32(T.INT32);
      b.u64(v.i32s.length);
      for (const x of v.i32s) b.i32(x);
    } else if ('f32s' in v) {
      b.u32(T.FLOAT32);
      b.u64(v.f32s.length);
      for (let i = 0; i < v.f32s.length; i++) b.f32(v.f32s[i]);
    } else {
      b.u32(T.STRING);
      b.u64(v.strs.length);
      for (const x of v.strs) b.str(x);
    }
  }
}

/** f32 values (or f16 bit patterns) -> the bytes of `type`. */
export function encodeTensor(values: Float32Array | Uint16Array, type: GgmlType): Uint8Array {
  if (values instanceof Uint16Array) {
    if (type === 'F16') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    const table = f16ToF32Table();
    const wide = new Float32Array(values.length); // (a loop: TypedArray.from with a map builds a JS array first)
    for (let i = 0; i < values.length; i++) wide[i] = table[values[i]];
    return encodeTensor(wide, type);
  }
  const x = values;
  if (type === 'F32') return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  if (type === 'F16') {
    const h = new Uint16Array(x.length);
    for (let i = 0; i < x.length; i++) h[i] = f32ToF16Bits(x[i]);
    return new Uint8Array(h.buffer);
  }
  const nb = x.length / BLOCK;
  const out = new Uint8Array(nb * BLOCK_BYTES[type]);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    const o = b * BLOCK_BYTES[type];
    const base = b * BLOCK;
    if (type === 'Q8_0') {
      let amax = 0;
      for (let j = 0; j < BLOCK; j++) amax = Math.max(amax, Math.abs(x[base + j]));
      const d = amax / 127;
      const id = d ? 1 / d : 0;
      dv.setUint16(o, f32ToF16Bits(d), true);
      for (let j = 0; j < BLOCK; j++) dv.setInt8(o + 2 + j, Math.round(x[base + j] * id));
    } else {
      // Q4_0: the scale keeps the sign of the largest-magnitude value, which then maps to -8
      let amax = 0,
        max = 0;
      for (let j = 0; j < BLOCK; j++) {
        const v = x[base + j];
        if (Math.abs(v) > amax) {
          amax = Math.abs(v);
          max = v;
        }
      }
      const d = max / -8;
      const id = d ? 1 / d : 0;
      dv.setUint16(o, f32ToF16Bits(d), true);
      const q = (v: number): number => Math.min(15, Math.trunc(v * id + 8.5));
      for (let j = 0; j < BLOCK / 2; j++) out[o + 2 + j] = q(x[base + j]) | (q(x[base + j + BLOCK / 2]) << 4);
    }
  }
  return out;
}

/**
 * Writes `path` (atomically: a temporary file renamed at the end). `kv` must include
 * general.architecture and whatever the architecture's loader requires.
 */
export function writeGguf(
  path: string,
  kv: ReadonlyArray<[string, GgufValue]>,
  tensors: readonly GgufTensor[],
  alignment = 32,
): void {
  const h = new Bytes();
  h.u32(0x46554747); // "GGUF"
  h.u32(3);
  h.u64(tensors.length);
  h.u64(kv.length + 1);
  h.str('general.alignment');
  writeValue(h, { u32: alignment });
  for (const [k, v] of kv) {
    h.str(k);
    writeValue(h, v);
  }
  let offset = 0;
  for (const t of tensors) {
    h.str(t.name);
    h.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) h.u64(t.shape[i]);
    h.u32(GGML_TYPE[t.type]);
    h.u64(offset);
    offset += Math.ceil(tensorBytes(t.shape, t.type) / alignment) * alignment;
  }
  h.pad(alignment);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, h.bytes());
    const zeros = new Uint8Array(alignment);
    for (const t of tensors) {
      const x = t.data();
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (x.length !== n) throw new Error(`${t.name}: ${x.length} values for shape [${t.shape.join(', ')}]`);
      const bytes = encodeTensor(x, t.type);
      for (let done = 0; done < bytes.length;)
        done += writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
      const pad = (alignment - (bytes.length % alignment)) % alignment;
      if (pad) writeSync(fd, zeros, 0, pad);
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
