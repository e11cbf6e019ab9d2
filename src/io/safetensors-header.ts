/**
 * Parsing and validating a safetensors header (format: https://github.com/huggingface/safetensors):
 *
 *   8 bytes      N, little-endian u64
 *   N bytes      UTF-8 JSON object: { "__metadata__"?: {str: str},
 *                                     name: { "dtype": "F32", "shape": [d0, …], "data_offsets": [begin, end] }, … }
 *   rest         the data section; offsets are relative to its first byte, tensors are little-endian,
 *                row-major and contiguous.
 *
 * Every rule is checked here, so the reader can trust an entry's offsets before it reads a byte.
 */
import { fail, fmtShape } from '../errors.js';
import { parseUntrustedJson } from './json.js';
import { STORED_DTYPE_BYTES, type StoredDType, type TensorEntry } from './tensor-source.js';

/** The reference implementation refuses headers above this (its MAX_HEADER_SIZE); so do we. */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

/** Dtypes the format defines that mamba-ts cannot load: valid files, but UNSUPPORTED rather than CORRUPT_FILE. */
const UNSUPPORTED_DTYPES: ReadonlySet<string> = new Set([
  'U16',
  'U32',
  'U64',
  'F8_E5M2',
  'F8_E4M3',
  'F8_E8M0',
  'F6_E2M3',
  'F6_E3M2',
  'F4',
  'C64',
]);

/** A tensor and where its bytes lie: `[begin, end)` relative to the data section. */
export interface SafetensorsEntry extends TensorEntry {
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  /** In data-section order. */
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
  readonly metadata: Readonly<Record<string, string>>;
}

export function isStoredDType(s: string): s is StoredDType {
  return Object.hasOwn(STORED_DTYPE_BYTES, s);
}

function show(value: unknown): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegativeIntList(v: unknown, length?: number): v is number[] {
  return (
    Array.isArray(v) &&
    (length === undefined || v.length === length) &&
    v.every((x) => Number.isSafeInteger(x) && x >= 0)
  );
}

/**
 * Decodes and validates the JSON header of a file whose data section has `dataBytes` bytes.
 * `file` names the file in messages.
 */
export function parseSafetensorsHeader(json: Uint8Array, dataBytes: number, file: string): SafetensorsHeader {
  const corrupt = (message: string, details: Record<string, unknown> = {}): never =>
    fail('CORRUPT_FILE', `${file}: ${message}`, { file, ...details });

  const parsed = parseUntrustedJson(json, `${file}: the safetensors header`, {
    maxBytes: SAFETENSORS_MAX_HEADER_BYTES,
    uniqueTopLevelKeys: true,
  });
  if (!isPlainObject(parsed)) return corrupt(`the safetensors header must be a JSON object, got ${show(parsed)}`);

  let metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value, corrupt);
      continue;
    }
    const entry = parseEntry(name, value, file, corrupt);
    if (entry.end > dataBytes) {
      corrupt(
        `the file is truncated: tensor "${name}" needs bytes [${entry.begin}, ${entry.end}) of the data section, which has only ${dataBytes} bytes`,
        {
          tensor: name,
          expected: entry.end,
          actual: dataBytes,
        },
      );
    }
    entries.push(entry);
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  // As in the reference (Metadata::validate), the non-empty tensors must tile the data section: sorted
  // by begin, each starts where the previous ends (earlier: overlap; later: a hole), and the last ends
  // at the end of the file. A file with overlaps or unaccounted bytes is ambiguous, so refused. Empty
  // tensors occupy no bytes and are exempt (the reference also wants their offsets in sequence).
  let previous: SafetensorsEntry | undefined;
  let covered = 0;
  for (const entry of entries) {
    if (entry.byteLength === 0) continue;
    if (previous !== undefined && entry.begin < previous.end) {
      corrupt(
        `tensors "${previous.name}" [${previous.begin}, ${previous.end}) and "${entry.name}" [${entry.begin}, ${entry.end}) overlap in the data section`,
        {
          tensor: entry.name,
          other: previous.name,
        },
      );
    }
    if (entry.begin > covered) {
      const after = previous ? `after "${previous.name}" ends` : 'at the start of the data section';
      corrupt(
        `bytes [${covered}, ${entry.begin}) of the data section belong to no tensor (a hole ${after}, ` +
          `before "${entry.name}"); expected the tensors to cover the data section without gaps`,
        {
          tensor: entry.name,
          expected: covered,
          actual: entry.begin,
        },
      );
    }
    previous = entry;
    covered = entry.end;
  }
  if (covered !== dataBytes) {
    corrupt(
      `the tensors cover ${covered} bytes of the data section, which has ${dataBytes}: ` +
        `${dataBytes - covered} trailing bytes belong to no tensor`,
      {
        expected: covered,
        actual: dataBytes,
      },
    );
  }
  return { entries: new Map(entries.map((e) => [e.name, e])), metadata };
}

function parseMetadata(
  value: unknown,
  corrupt: (m: string, d?: Record<string, unknown>) => never,
): Record<string, string> {
  // The reference writes no key when there is no metadata and accepts `null`.
  if (value === null) return {};
  if (!isPlainObject(value)) return corrupt(`"__metadata__" must be an object of strings, got ${show(value)}`);
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') corrupt(`"__metadata__" value for "${key}" must be a string, got ${show(v)}`, { key });
  }
  // fromEntries defines own properties, so even a key like "__proto__" stays plain data.
  return Object.fromEntries(Object.entries(value as Record<string, string>));
}

function parseEntry(
  name: string,
  value: unknown,
  file: string,
  corrupt: (m: string, d?: Record<string, unknown>) => never,
): SafetensorsEntry {
  const bad = (what: string): never => corrupt(`tensor "${name}": ${what}`, { tensor: name });
  if (!isPlainObject(value))
    return bad(`header entry must be an object with dtype, shape and data_offsets, got ${show(value)}`);
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (!(field in value)) bad(`header entry has no "${field}"`);
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') return bad(`dtype must be a string, got ${show(dtype)}`);
  if (!isStoredDType(dtype)) {
    if (UNSUPPORTED_DTYPES.has(dtype)) {
      fail(
        'UNSUPPORTED',
        `${file}: tensor "${name}" has dtype ${dtype}, which mamba-ts cannot load (supported: ${Object.keys(STORED_DTYPE_BYTES).join(', ')})`,
        {
          file,
          tensor: name,
          dtype,
        },
      );
    }
    return bad(`unknown dtype ${show(dtype)}`);
  }
  if (!isNonNegativeIntList(shape)) return bad(`shape must be a list of non-negative integers, got ${show(shape)}`);
  if (!isNonNegativeIntList(offsets, 2))
    return bad(`data_offsets must be [begin, end] with non-negative integers, got ${show(offsets)}`);
  const [begin, end] = offsets as [number, number];
  if (begin > end) return bad(`data_offsets [${begin}, ${end}] end before they begin`);
  let byteLength = STORED_DTYPE_BYTES[dtype];
  for (const d of shape) byteLength *= d;
  if (!Number.isSafeInteger(byteLength)) return bad(`shape ${fmtShape(shape)} is too large`);
  if (end - begin !== byteLength) {
    corrupt(
      `tensor "${name}": data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} ${fmtShape(shape)} needs ${byteLength}`,
      {
        tensor: name,
        expected: byteLength,
        actual: end - begin,
      },
    );
  }
  return { name, dtype, shape: Object.freeze([...shape]), byteLength, begin, end };
}
