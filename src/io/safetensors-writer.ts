/**
 * Writing safetensors files in the reference layout (huggingface/safetensors `serialize`): the JSON
 * header is compact, `__metadata__` (when given) comes first, the header is padded with spaces to a
 * multiple of 8 bytes so the data section starts 8-byte aligned, and tensor data follows without
 * gaps (the reference reader rejects gaps). Tensors are laid out in the order given; pass them
 * through `referenceOrder` to get the reference's order (largest element size first, which also
 * aligns every tensor to its element size) and byte-identical output. Browser-safe.
 */
import { fail, fmtShape } from '../errors.js';
import { isStoredDType } from './safetensors-header.js';
import { STORED_DTYPE_BYTES, type StoredDType } from './tensor-source.js';

export interface TensorToWrite {
  /** Name in the checkpoint. */
  readonly name: string;
  readonly dtype: StoredDType;
  readonly shape: readonly number[];
  /** The tensor's little-endian, row-major bytes: a Uint8Array or any typed array over them. */
  readonly data: ArrayBufferView;
}

export interface SafetensorsLayout {
  /** The 8-byte header length followed by the padded JSON header. */
  readonly header: Uint8Array;
  /** Each tensor's bytes (views, not copies), in file order, directly after the header. */
  readonly chunks: readonly Uint8Array[];
  /** Total file size. */
  readonly byteLength: number;
}

/** Element-size order of the reference's Dtype enum (its serializer sorts by this, descending, then by name). */
const REFERENCE_RANK: Readonly<Record<StoredDType, number>> = {
  BOOL: 0,
  U8: 1,
  I8: 2,
  I16: 5,
  F16: 7,
  BF16: 8,
  I32: 9,
  F32: 11,
  F64: 12,
  I64: 13,
};

/** Compares by Unicode code point, which is the byte order of UTF-8 (the reference compares Rust strings). */
function compareCodePoints(a: string, b: string): number {
  const ai = a[Symbol.iterator]();
  const bi = b[Symbol.iterator]();
  for (;;) {
    const x = ai.next();
    const y = bi.next();
    if (x.done || y.done) return (x.done ? 0 : 1) - (y.done ? 0 : 1);
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/** The tensors in the order the reference serializer writes them: descending element size, then name. */
export function referenceOrder<T extends TensorToWrite>(tensors: readonly T[]): T[] {
  return [...tensors].sort(
    (a, b) => REFERENCE_RANK[b.dtype] - REFERENCE_RANK[a.dtype] || compareCodePoints(a.name, b.name),
  );
}

function checkTensor(t: TensorToWrite, seen: Set<string>): Uint8Array {
  const where = `safetensors write: tensor "${t.name}"`;
  if (typeof t.name !== 'string')
    fail('BAD_ARGUMENT', `safetensors write: tensor names must be strings, got ${String(t.name)}`);
  if (t.name === '__metadata__')
    fail('BAD_ARGUMENT', `${where}: the name is reserved for the metadata`, { tensor: t.name });
  if (seen.has(t.name)) fail('BAD_ARGUMENT', `${where} appears twice`, { tensor: t.name });
  seen.add(t.name);
  if (!isStoredDType(t.dtype)) {
    fail(
      'BAD_ARGUMENT',
      `${where}: unknown dtype ${String(t.dtype)} (expected one of ${Object.keys(STORED_DTYPE_BYTES).join(', ')})`,
      { tensor: t.name },
    );
  }
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail('BAD_ARGUMENT', `${where}: shape must be a list of non-negative integers, got ${String(t.shape)}`, {
      tensor: t.name,
    });
  }
  if (!ArrayBuffer.isView(t.data))
    fail('BAD_ARGUMENT', `${where}: data must be a Uint8Array or typed array`, { tensor: t.name });
  const expected = t.shape.reduce((n, d) => n * d, STORED_DTYPE_BYTES[t.dtype]);
  if (t.data.byteLength !== expected) {
    fail(
      'SHAPE_MISMATCH',
      `${where}: ${t.dtype} ${fmtShape(t.shape)} needs ${expected} bytes, data has ${t.data.byteLength}`,
      {
        tensor: t.name,
        shape: [...t.shape],
        dtype: t.dtype,
        expected,
        actual: t.data.byteLength,
      },
    );
  }
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/**
 * Plans a file: validates the tensors and builds the header; the data stays in the caller's buffers.
 * `metadata` becomes `__metadata__`; it is omitted when not given (as the reference does for None).
 */
export function layoutSafetensors(
  tensors: readonly TensorToWrite[],
  metadata?: Readonly<Record<string, string>>,
): SafetensorsLayout {
  const seen = new Set<string>();
  const chunks = tensors.map((t) => checkTensor(t, seen));
  // Built by hand rather than JSON.stringify(object): JS objects move integer-like keys ("0") to the
  // front, and the header must list tensors in file order.
  const members: string[] = [];
  if (metadata !== undefined) {
    const pairs = Object.entries(metadata).map(([k, v]) => {
      if (typeof v !== 'string')
        fail('BAD_ARGUMENT', `safetensors write: metadata value for "${k}" must be a string, got ${typeof v}`, {
          key: k,
        });
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    members.push(`"__metadata__":{${pairs.join(',')}}`);
  }
  let offset = 0;
  tensors.forEach((t, i) => {
    const end = offset + chunks[i].byteLength;
    members.push(
      `${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, end] })}`,
    );
    offset = end;
  });
  const json = new TextEncoder().encode(`{${members.join(',')}}`);
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const header = new Uint8Array(8 + padded);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  header.fill(0x20, 8 + json.byteLength); // spaces: still valid JSON whitespace
  return { header, chunks, byteLength: header.byteLength + offset };
}

/** The whole file in one buffer: for small files and browsers (use `writeSafetensorsFile` for big ones in Node). */
export function encodeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const layout = layoutSafetensors(tensors, metadata);
  const out = new Uint8Array(layout.byteLength);
  out.set(layout.header, 0);
  let offset = layout.header.byteLength;
  for (const chunk of layout.chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
