/**
 * Reads PyTorch checkpoints written by `torch.save` (the zip format of PyTorch >= 1.6, e.g. the
 * `pytorch_model.bin` of `state-spaces/mamba-*`) as a TensorSource, without Python and without
 * running any code from the file. Browser-safe.
 *
 * Layout (torch/serialization.py `_save`, caffe2/serialize/inline_container.cc): every record sits in
 * one folder, `<archive>/`, named after the file (`pytorch_model/`) or `archive/` for buffers:
 *   data.pkl             the pickled object; each storage in it is a persistent id
 *                        ('storage', torch.FloatStorage, '<key>', 'cpu', numel)
 *   byteorder            `little` or `big` (older PyTorch writes none: native order, in practice little)
 *   data/<key>           the raw bytes of each storage, STORED, aligned to 64 bytes
 *   version, .data/version, .format_version, .storage_alignment, .data/serialization_id
 * A tensor is `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`: a strided view, in
 * elements, of one storage; several tensors may view one storage (tied weights).
 */
import { fail, fmtShape } from '../errors.js';
import { STORED_DTYPE_BYTES, type StoredDType, type TensorEntry, type TensorSource } from './tensor-source.js';
import { startsLikeZip, ZipArchive, type ByteSource, type ZipEntry } from './zip.js';
import { describe, PyDict, TorchTensor, unpickleTorch, type PyValue, type TorchDTypeName } from './torch-pickle.js';

export type { ByteSource } from './zip.js';

/** Wrapper keys a training script commonly nests the state dict under: `{"state_dict": {...}}`. */
export const STATE_DICT_WRAPPERS = ['state_dict', 'model'] as const;
export type StateDictWrapper = (typeof STATE_DICT_WRAPPERS)[number];

export interface TorchCheckpoint extends TensorSource {
  /** The folder every record of the archive lives in, e.g. `pytorch_model` or `archive`. */
  readonly archiveName: string;
  /** The key the tensors were found under (`{"state_dict": {...}}`), or null for a plain state dict. */
  readonly wrapper: StateDictWrapper | null;
}

const TORCH_TO_STORED: Readonly<Record<string, StoredDType>> = {
  float64: 'F64',
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};

/**
 * Largest `data.pkl` read: it holds names, shapes and storage keys only (~100 bytes per tensor), so a
 * 70B model's is a few MB; the cap stops a small archive inflating a member to gigabytes.
 */
export const MAX_PICKLE_BYTES = 256 * 1024 * 1024;
/** Bytes a view that repeats its storage's elements (stride 0) may expand to: masks and ids are kilobytes. */
export const MAX_REPEATING_VIEW_BYTES = 64 * 1024 * 1024;
/** `byteorder` and `version` hold a word or a number. */
const MAX_SMALL_RECORD_BYTES = 4096;

/** The first bytes of a pre-1.6 checkpoint: PROTO 2, then LONG1 of torch's MAGIC_NUMBER 0x1950a86a20f9469cfc6c. */
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/**
 * Opens a `torch.save` zip checkpoint. It reads the zip directory, `byteorder`, `version` and
 * `data.pkl` (a few small positional reads) and checks every tensor against its storage; tensor data
 * is read later, one tensor at a time. The checkpoint owns `source`: closing it closes the source,
 * and a failed open closes it too.
 */
export async function openTorchCheckpoint(source: ByteSource): Promise<TorchCheckpoint> {
  try {
    return await open(source);
  } catch (e) {
    await source.close().catch(() => undefined);
    throw e;
  }
}

async function open(source: ByteSource): Promise<TorchCheckpoint> {
  const file = source.description;
  if (source.size === 0) fail('CORRUPT_FILE', `${file} is empty, expected a PyTorch checkpoint`, { file });
  const head = await source.read(0, Math.min(source.size, LEGACY_MAGIC.length));
  checkHead(head, file);

  const zip = await ZipArchive.open(source);
  const prefix = archivePrefix(zip, file);
  const record = (name: string) => zip.get(prefix + name);
  if (record('constants.pkl') || zip.entries.some((e) => e.name.startsWith(`${prefix}code/`))) {
    fail(
      'UNSUPPORTED',
      `${file} is a TorchScript archive (torch.jit.save), not a torch.save state dict: load it in Python and save model.state_dict() with torch.save or safetensors`,
      { file },
    );
  }

  const byteorderRecord = record('byteorder');
  if (byteorderRecord) {
    const order = new TextDecoder().decode(await zip.read(byteorderRecord, MAX_SMALL_RECORD_BYTES)).trim();
    if (order === 'big') {
      fail(
        'UNSUPPORTED',
        `${file} was saved on a big-endian machine (byteorder "big"); mamba-ts reads little-endian checkpoints only: re-save it on a little-endian machine or convert it to safetensors`,
        { file },
      );
    }
    if (order !== 'little')
      fail('CORRUPT_FILE', `${file}: record ${byteorderRecord.name} says "${order}", expected "little" or "big"`, {
        file,
      });
  }
  const versionRecord = record('.data/version') ?? record('version');
  const version = versionRecord
    ? new TextDecoder().decode(await zip.read(versionRecord, MAX_SMALL_RECORD_BYTES)).trim()
    : undefined;

  const pklRecord = record('data.pkl')!;
  const root = unpickleTorch(await zip.read(pklRecord, MAX_PICKLE_BYTES), { file, member: pklRecord.name });
  const { dict, wrapper } = findStateDict(root, file);

  const tensors = new Map<string, TensorPlan>();
  const skipped: string[] = [];
  for (const [key, value] of dict.items) {
    if (typeof key !== 'string') {
      fail('UNSUPPORTED', `${file}: the state dict has a key of type ${describe(key)}; tensor names must be strings`, {
        file,
      });
    }
    if (!(value instanceof TorchTensor)) {
      skipped.push(key); // e.g. an `_extra_state` or a counter saved next to the tensors
      continue;
    }
    tensors.set(key, planTensor(key, value, zip, prefix, file));
  }
  if (tensors.size === 0) {
    fail(
      'UNSUPPORTED',
      `${file} holds no tensors${wrapper ? ` under "${wrapper}"` : ''}; top-level keys: ${keysOf(dict)}`,
      { file },
    );
  }

  const metadata: Record<string, string> = { 'torch.archive': prefix.slice(0, -1) };
  if (version !== undefined) metadata['torch.version'] = version;
  if (wrapper) metadata['torch.wrapper'] = wrapper;
  if (skipped.length) metadata['torch.non_tensor_entries'] = skipped.join(',');
  return new TorchZipCheckpoint(source, zip, tensors, metadata, prefix.slice(0, -1), wrapper);
}

/** Tells a legacy or foreign file apart from a zip before the zip reader looks at its end. */
function checkHead(head: Uint8Array, file: string): void {
  if (head[0] === 0x80 && head.length > 1 && head[1] >= 2 && head[1] <= 5) {
    const legacy = LEGACY_MAGIC.every((b, i) => head[i] === b);
    fail(
      'UNSUPPORTED',
      `${file} is ${legacy ? 'in the legacy torch.save format (PyTorch < 1.6, or saved with _use_new_zipfile_serialization=False)' : 'a bare pickle, not a torch.save zip archive'}, ` +
        'which mamba-ts does not read: re-save it with a recent PyTorch (torch.save(torch.load(path), path)) or convert it to safetensors',
      { file },
    );
  }
  if (!startsLikeZip(head)) {
    const hex = [...head.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    // safetensors: an 8-byte little-endian header length, then the JSON header.
    const hint = head.length >= 9 && head[8] === 0x7b ? ' (it looks like a safetensors file)' : '';
    fail(
      'CORRUPT_FILE',
      `${file} is not a PyTorch zip checkpoint: it starts with bytes ${hex}, expected "PK\\x03\\x04"${hint}`,
      { file },
    );
  }
}

/** `<archive>/` from the one `<archive>/data.pkl` record (torch names the folder after the file). */
function archivePrefix(zip: ZipArchive, file: string): string {
  const pkls = zip.entries.filter((e) => e.name === 'data.pkl' || e.name.endsWith('/data.pkl'));
  if (pkls.length === 0) {
    const names = zip.entries
      .slice(0, 5)
      .map((e) => e.name)
      .join(', ');
    fail(
      'CORRUPT_FILE',
      `${file} is a zip without a data.pkl record, so not a torch.save checkpoint (it holds ${zip.entries.length} members${names ? `: ${names}` : ''}${zip.entries.length > 5 ? ', …' : ''})`,
      { file },
    );
  }
  // The shallowest one is the checkpoint's own (a nested one would be a checkpoint stored inside it).
  pkls.sort((a, b) => depth(a.name) - depth(b.name));
  if (pkls.length > 1 && depth(pkls[0].name) === depth(pkls[1].name)) {
    fail(
      'CORRUPT_FILE',
      `${file} holds several checkpoints (${pkls.map((e) => e.name).join(', ')}); expected one <archive>/data.pkl`,
      { file },
    );
  }
  const name = pkls[0].name;
  return name.slice(0, name.length - 'data.pkl'.length);
}

function depth(name: string): number {
  return name.split('/').length;
}

/** The dict of tensors: the pickled dict itself, or one nested under a known wrapper key. */
function findStateDict(root: PyValue, file: string): { dict: PyDict; wrapper: StateDictWrapper | null } {
  if (!(root instanceof PyDict)) {
    fail('UNSUPPORTED', `${file} holds a ${describe(root)}, expected a dict of tensors (a state dict)`, { file });
  }
  const hasTensors = [...root.items.values()].some((v) => v instanceof TorchTensor);
  if (!hasTensors) {
    for (const key of STATE_DICT_WRAPPERS) {
      const inner = root.items.get(key);
      if (inner instanceof PyDict) return { dict: inner, wrapper: key };
    }
  }
  return { dict: root, wrapper: null };
}

function keysOf(dict: PyDict): string {
  const keys = [...dict.items.keys()].slice(0, 8).map((k) => JSON.stringify(k));
  return keys.length ? `${keys.join(', ')}${dict.items.size > 8 ? ', …' : ''}` : '(none)';
}

// ---- tensors ------------------------------------------------------------------------------------

/** How to read one tensor: which bytes of which storage record, and whether they need gathering. */
interface TensorPlan {
  readonly entry: TensorEntry;
  readonly record: ZipEntry;
  readonly elementBytes: number;
  /** Byte range of the record that holds every element of the view. */
  readonly spanStart: number;
  readonly spanLength: number;
  /** Row-major and dense: the span is the tensor. */
  readonly contiguous: boolean;
  readonly shape: readonly number[];
  readonly stride: readonly number[];
}

function storedDType(dtype: TorchDTypeName, what: string, file: string): StoredDType {
  const stored = TORCH_TO_STORED[dtype];
  if (!stored) {
    fail(
      'UNSUPPORTED',
      `${what} in ${file} has dtype torch.${dtype}, which mamba-ts does not read (supported: ${Object.keys(TORCH_TO_STORED).join(', ')})`,
      {
        file,
        dtype,
      },
    );
  }
  return stored;
}

function planTensor(name: string, t: TorchTensor, zip: ZipArchive, prefix: string, file: string): TensorPlan {
  const dtype = storedDType(t.dtype, `tensor "${name}"`, file);
  const e = STORED_DTYPE_BYTES[dtype];
  const storage = t.storage;
  // Storage sizes count the storage's own elements (bytes for an untyped storage).
  const storageBytes =
    storage.numel * STORED_DTYPE_BYTES[storedDType(storage.dtype, `storage ${storage.key} of "${name}"`, file)];
  const record = zip.get(`${prefix}data/${storage.key}`);
  if (!record) {
    fail(
      'CORRUPT_FILE',
      `${file}: tensor "${name}" views storage ${storage.key}, but the record ${prefix}data/${storage.key} is missing`,
      { file, tensor: name },
    );
  }
  if (record.size !== storageBytes) {
    fail(
      'CORRUPT_FILE',
      `${file}: record ${record.name} holds ${record.size} bytes, but storage ${storage.key} is ${storage.numel} x ${storage.dtype} = ${storageBytes} bytes`,
      {
        file,
        tensor: name,
      },
    );
  }

  const numel = t.shape.reduce((a, b) => a * b, 1);
  const byteLength = numel * e;
  if (!Number.isSafeInteger(byteLength))
    fail('CORRUPT_FILE', `${file}: tensor "${name}" of shape ${fmtShape(t.shape)} is impossibly large`, {
      file,
      tensor: name,
    });
  const entry: TensorEntry = { name, dtype, shape: t.shape, byteLength };
  const base = { entry, record, elementBytes: e, shape: t.shape, stride: t.stride };
  if (numel === 0) return { ...base, spanStart: 0, spanLength: 0, contiguous: true };

  // Strides are non-negative, so the view spans elements [offset, offset + sum((size - 1) * stride)].
  let last = t.storageOffset;
  for (let d = 0; d < t.shape.length; d++) last += (t.shape[d] - 1) * t.stride[d];
  const spanStart = t.storageOffset * e;
  const spanEnd = (last + 1) * e;
  if (spanEnd > storageBytes) {
    fail(
      'CORRUPT_FILE',
      `${file}: tensor "${name}" (shape ${fmtShape(t.shape)}, stride ${fmtShape(t.stride)}, offset ${t.storageOffset}) reaches byte ${spanEnd} of storage ${storage.key}, which has ${storageBytes}`,
      {
        file,
        tensor: name,
      },
    );
  }
  // A view may repeat elements (stride 0: torch.save keeps an expand()ed tensor's broadcast), so it can
  // claim far more bytes than its storage holds, and reading it materialises them all. Such views are
  // small in real checkpoints (position ids, masks); one above the cap is refused before any read.
  if (byteLength > storageBytes && byteLength > MAX_REPEATING_VIEW_BYTES) {
    fail(
      'CORRUPT_FILE',
      `${file}: tensor "${name}" (shape ${fmtShape(t.shape)}, stride ${fmtShape(t.stride)}) ` +
        `repeats the ${storageBytes} bytes of storage ${storage.key} into ${byteLength} bytes, more than the ` +
        `${MAX_REPEATING_VIEW_BYTES}-byte limit for a view larger than its storage (expected a contiguous tensor)`,
      {
        file,
        tensor: name,
        expected: MAX_REPEATING_VIEW_BYTES,
        actual: byteLength,
      },
    );
  }
  return { ...base, spanStart, spanLength: spanEnd - spanStart, contiguous: isRowMajor(t.shape, t.stride) };
}

function isRowMajor(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false; // a size-1 dimension's stride is never used
    expected *= shape[d];
  }
  return true;
}

/** Copies the elements of a strided view out of `span` (which starts at the view's first element) in row-major order. */
function gather(span: Uint8Array, plan: TensorPlan, out: Uint8Array): void {
  const { shape, stride, elementBytes: e } = plan;
  const rank = shape.length;
  const inner = shape[rank - 1];
  const innerStride = stride[rank - 1];
  const index = new Array<number>(rank - 1).fill(0);
  const rows = plan.entry.byteLength / e / inner;
  let o = 0;
  for (let r = 0; r < rows; r++) {
    let s = 0; // element offset of this row's first element from the span's start
    for (let d = 0; d < rank - 1; d++) s += index[d] * stride[d];
    if (innerStride === 1) {
      out.set(span.subarray(s * e, (s + inner) * e), o);
      o += inner * e;
    } else {
      for (let j = 0; j < inner; j++) {
        const b = (s + j * innerStride) * e;
        for (let k = 0; k < e; k++) out[o++] = span[b + k];
      }
    }
    for (let d = rank - 2; d >= 0; d--) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
}

class TorchZipCheckpoint implements TorchCheckpoint {
  readonly description: string;
  readonly entries: ReadonlyMap<string, TensorEntry>;
  readonly storedBytes: number;
  private closed = false;

  constructor(
    private readonly source: ByteSource,
    private readonly zip: ZipArchive,
    private readonly plans: ReadonlyMap<string, TensorPlan>,
    readonly metadata: Readonly<Record<string, string>>,
    readonly archiveName: string,
    readonly wrapper: StateDictWrapper | null,
  ) {
    this.description = source.description;
    this.storedBytes = source.size;
    this.entries = new Map([...plans].map(([name, plan]) => [name, plan.entry]));
  }

  async read(name: string, dest?: Uint8Array): Promise<Uint8Array> {
    const file = this.description;
    if (this.closed)
      fail('BAD_ARGUMENT', `${file} is closed; open it again to read tensor "${name}"`, { file, tensor: name });
    const plan = this.plans.get(name);
    if (!plan) {
      const some = [...this.plans.keys()]
        .slice(0, 5)
        .map((n) => `"${n}"`)
        .join(', ');
      fail('BAD_ARGUMENT', `no tensor "${name}" in ${file}; it has ${this.plans.size}, e.g. ${some}`, {
        file,
        tensor: name,
      });
    }
    const { byteLength } = plan.entry;
    if (dest !== undefined && dest.byteLength !== byteLength) {
      fail(
        'BAD_ARGUMENT',
        `read "${name}" from ${file}: destination has ${dest.byteLength} bytes, the tensor has ${byteLength}`,
        {
          file,
          tensor: name,
          expected: byteLength,
          actual: dest.byteLength,
        },
      );
    }
    if (byteLength === 0) return dest ?? new Uint8Array(0);
    // Only the bytes the view covers: for a dense tensor exactly its data, for a strided one the span it touches.
    const span = await this.zip.readRange(plan.record, plan.spanStart, plan.spanLength);
    if (plan.contiguous) {
      if (!dest) return span;
      dest.set(span);
      return dest;
    }
    const out = dest ?? new Uint8Array(byteLength);
    gather(span, plan, out);
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.source.close();
  }
}
