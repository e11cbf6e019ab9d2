import { fail, fmtShape } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import { f32ToHalf, halfToF32, isQuantized, type DType } from '../tensor/dtype.js';
import { sameShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { StoredDType, TensorEntry, TensorSource } from '../io/tensor-source.js';

/**
 * Reading checkpoint tensors onto a backend: every tensor's shape checked against what the config
 * implies (the error names the tensor, both shapes and the config keys behind the expectation),
 * dtypes converted, and non-finite values refused.
 */

/** How big matrices are held: `f32` converts everything; `f16`/`bf16` keep 16-bit storage; `auto`
 * keeps 16-bit checkpoints 16-bit and f32 ones f32; `q8` quantises them to 8 bits with a scale per
 * block of 32 (backend/cpu/reference/q8.ts; backends without q8 reject it); `q4` to 4 bits with an f16 scale per
 * block of 32 (backend/cpu/reference/q4.ts, docs/weights.md). Vectors (norms, A_log, D, biases,
 * conv) are always converted to f32: they are small and read on every token. */
export type WeightDType = 'auto' | 'f32' | 'f16' | 'bf16' | 'q8' | 'q4';

export interface ExpectedTensor {
  /** Our name (Hugging Face layout). */
  name: string;
  /** Shape in the checkpoint. */
  shape: readonly number[];
  /** Shape we hold it in (e.g. conv1d.weight (e, 1, k) -> (e, k)). */
  holdShape?: readonly number[];
  /** Big matrices may stay 16-bit. */
  matrix: boolean;
  /** Which config values fix this shape, for the error message. */
  why: string;
  optional?: boolean;
}

/** Finds `name` in the source under its own name or one of its aliases (other layouts' names). */
export function findEntry(
  src: TensorSource,
  name: string,
  aliases: (name: string) => string[],
): TensorEntry | undefined {
  for (const n of [name, ...aliases(name)]) {
    const e = src.entries.get(n);
    if (e) return e;
  }
  return undefined;
}

export async function loadTensor(
  src: TensorSource,
  entry: TensorEntry,
  exp: ExpectedTensor,
  backend: Backend,
  wdtype: WeightDType,
): Promise<Tensor> {
  if (!sameShape(entry.shape, exp.shape)) {
    fail(
      'CONFIG_MISMATCH',
      `${src.description}: tensor ${entry.name} has shape ${fmtShape(entry.shape)}, but the config implies ${fmtShape(exp.shape)} (${exp.why})`,
      {
        tensor: entry.name,
        actual: entry.shape,
        expected: exp.shape,
      },
    );
  }
  const bytes = await src.read(entry.name);
  const hold = exp.holdShape ?? exp.shape;
  const target: DType =
    !exp.matrix || wdtype === 'f32'
      ? 'f32'
      : wdtype === 'auto'
        ? entry.dtype === 'F16'
          ? 'f16'
          : entry.dtype === 'BF16'
            ? 'bf16'
            : 'f32'
        : wdtype;
  const t = place(entry, bytes, hold, target, backend, src.description).keep();
  t.name = exp.name;
  return t;
}

/**
 * Stored bytes -> a tensor of `target` on the backend; checks every value is finite. 16-bit values are
 * checked on their bits and, where the backend converts or quantises them itself (`uploadFromHalf`),
 * handed over as stored: no f32 copy of the checkpoint on the host.
 */
function place(
  entry: TensorEntry,
  bytes: Uint8Array,
  hold: readonly number[],
  target: DType,
  backend: Backend,
  where: string,
): Tensor {
  const n = entry.shape.reduce((a, b) => a * b, 1);
  const aligned = (k: number): ArrayBuffer => {
    if (bytes.byteOffset % k === 0 && bytes.buffer instanceof ArrayBuffer) return bytes.buffer;
    return bytes.slice().buffer;
  };
  const off = (k: number): number =>
    bytes.byteOffset % k === 0 && bytes.buffer instanceof ArrayBuffer ? bytes.byteOffset : 0;
  const widen = target === 'f32' || isQuantized(target); // f32 values, as upload takes them for these
  switch (entry.dtype as StoredDType) {
    case 'F32':
    case 'F64': {
      const f32 =
        entry.dtype === 'F32'
          ? new Float32Array(aligned(4), off(4), n)
          : Float32Array.from(new Float64Array(aligned(8), off(8), n));
      checkFinite(f32, entry.name, where);
      // q8, q4: the backend's upload quantises the f32 values
      return backend.upload(widen ? f32 : f32ToHalf(f32, target as 'f16' | 'bf16'), hold, target);
    }
    case 'F16':
    case 'BF16': {
      const src16 = entry.dtype === 'F16' ? 'f16' : 'bf16';
      const half = new Uint16Array(aligned(2), off(2), n);
      checkFiniteHalf(half, src16, entry.name, where);
      if (target === src16) return backend.upload(half, hold, target); // kept as stored, never converted
      if (widen && backend.uploadFromHalf)
        return backend.uploadFromHalf(half, src16, hold, target as 'f32' | 'q8' | 'q4');
      const asF32 = halfToF32(half, src16);
      return backend.upload(widen ? asF32 : f32ToHalf(asF32, target as 'f16' | 'bf16'), hold, target);
    }
    default:
      return fail(
        'UNSUPPORTED',
        `${where}: tensor ${entry.name} has dtype ${entry.dtype}; weights must be F32, F16, BF16 or F64`,
      );
  }
}

export function checkFinite(a: Float32Array, name: string, where: string): void {
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (v - v !== 0)
      fail('NON_FINITE', `${where}: tensor ${name} holds ${v} at flat index ${i}; weights must be finite`, {
        tensor: name,
        index: i,
      });
  }
}

/**
 * checkFinite on 16-bit storage, by the bits: a half is inf or NaN exactly when its exponent bits are all
 * ones (f16 0x7c00, bf16 0x7f80). Two halves per 32-bit word: with x = w & (mask | mask << 16), each half of
 * x is at most the mask, and adding its lowest exponent bit sets bit 15 of that half only where it equals
 * the mask (no carry crosses into the other half), so one add and one test cover both.
 */
export function checkFiniteHalf(h: Uint16Array, dtype: 'f16' | 'bf16', name: string, where: string): void {
  const mask = dtype === 'f16' ? 0x7c00 : 0x7f80;
  const low = dtype === 'f16' ? 0x0400 : 0x0080;
  const refuse = (i: number): never => {
    const v = halfToF32(h.subarray(i, i + 1), dtype)[0];
    return fail('NON_FINITE', `${where}: tensor ${name} holds ${v} at flat index ${i}; weights must be finite`, {
      tensor: name,
      index: i,
    });
  };
  // a first half off 4-byte alignment alone, then whole words, then a last half alone
  const start = h.byteOffset % 4 === 0 ? 0 : Math.min(1, h.length);
  if (start && (h[0] & mask) === mask) refuse(0);
  const words = (h.length - start) >> 1;
  const w = new Uint32Array(h.buffer, h.byteOffset + 2 * start, words);
  const m2 = mask | (mask << 16),
    l2 = low | (low << 16),
    top = 0x80008000 | 0;
  for (let k = 0; k < words; k++)
    if ((((w[k] & m2) + l2) & top) !== 0) {
      const i = start + 2 * k;
      refuse((h[i] & mask) === mask ? i : i + 1);
    }
  const last = start + 2 * words;
  if (last < h.length && (h[last] & mask) === mask) refuse(last);
}

/** Every tensor of the source that no expectation claimed: an error. */
export function checkNoUnexpected(src: TensorSource, used: Set<string>): void {
  const extra = [...src.entries.keys()].filter((k) => !used.has(k));
  if (extra.length) {
    fail(
      'CONFIG_MISMATCH',
      `${src.description}: ${extra.length} tensor(s) do not belong to this model's config: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', ...' : ''}`,
      { extra },
    );
  }
}

/**
 * Loads every expected tensor of a checkpoint (under its name or an alias), checked against its
 * expected shape; refuses missing and unexpected tensors. With tied embeddings the head is the
 * embedding matrix: a stored `lm_head.weight` is allowed (torch.save of a tied model and some
 * exporters write it) but not loaded.
 */
export async function loadExpectedTensors(
  src: TensorSource,
  expected: readonly ExpectedTensor[],
  c: { tieEmbeddings: boolean; layout: 'hf' | 'mamba_ssm' },
  aliases: (name: string) => string[],
  backend: Backend,
  wdtype: WeightDType,
): Promise<Map<string, Tensor>> {
  const got = new Map<string, Tensor>();
  const used = new Set<string>();
  for (const exp of expected) {
    const entry = findEntry(src, exp.name, aliases);
    if (exp.name === 'lm_head.weight' && c.tieEmbeddings) {
      if (entry) used.add(entry.name);
      continue;
    }
    if (!entry) {
      if (exp.optional) continue;
      const tie = c.layout === 'mamba_ssm' ? 'tie_embeddings' : 'tie_word_embeddings';
      const hint =
        exp.name === 'lm_head.weight'
          ? ` (config.json has ${tie} false, so the checkpoint must hold lm_head.weight)`
          : '';
      fail(
        'CONFIG_MISMATCH',
        `${src.description}: tensor ${exp.name} is missing; expected shape (${exp.shape.join(', ')}) from ${exp.why}${hint}`,
        { tensor: exp.name },
      );
    }
    used.add(entry.name);
    got.set(exp.name, await loadTensor(src, entry, exp, backend, wdtype));
  }
  checkNoUnexpected(src, used);
  return got;
}
