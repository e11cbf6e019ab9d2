import { fail } from '../errors.js';
import type { StoredDType, TensorEntry, TensorSource } from '../io/tensor-source.js';
import { f32ToHalf, halfToF32 } from '../tensor/dtype.js';

/**
 * A checkpoint seen with some tensors multiplied as they are read: a constant factor folded into a
 * weight where the model multiplies that weight's product by it (Falcon-H1's muP multipliers:
 * ssm_out · out_proj(y) = (ssm_out · W) y). The product then costs nothing per token.
 *   a number: every element times it;
 *   a Float32Array of shape[0] factors: row r (the output r of a Linear weight) times factors[r].
 * Scaled tensors are read as F32 (one rounding: the loader converts from there to what it holds), or,
 * with `keepHalf` (weights held as the checkpoint stores them, dtype "auto"), as the F16/BF16 they were
 * stored in, rounded once more after the product.
 */
export type TensorScale = number | Float32Array;

export function scaledSource(
  src: TensorSource,
  scales: ReadonlyMap<string, TensorScale>,
  keepHalf: boolean,
): TensorSource {
  const entries = new Map<string, TensorEntry>(src.entries);
  const scaled = new Map<string, { from: TensorEntry; to: StoredDType; scale: TensorScale }>();
  for (const [name, scale] of scales) {
    const from = src.entries.get(name);
    if (!from) continue; // a missing tensor is the loader's error, under its own name
    const n = from.shape.reduce((a, b) => a * b, 1);
    if (typeof scale !== 'number' && (from.shape.length < 1 || scale.length !== from.shape[0]))
      fail(
        'CONFIG_MISMATCH',
        `${src.description}: tensor ${name} has shape (${from.shape.join(', ')}), expected ${scale.length} rows`,
      );
    if (from.dtype !== 'F32' && from.dtype !== 'F64' && from.dtype !== 'F16' && from.dtype !== 'BF16') continue; // refused by the loader
    const to: StoredDType = keepHalf && (from.dtype === 'F16' || from.dtype === 'BF16') ? from.dtype : 'F32';
    entries.set(name, { name, dtype: to, shape: from.shape, byteLength: n * (to === 'F32' ? 4 : 2) });
    scaled.set(name, { from, to, scale });
  }
  return {
    description: src.description,
    entries,
    metadata: src.metadata,
    ...(src.storedBytes === undefined ? {} : { storedBytes: src.storedBytes }),
    async read(name: string, dest?: Uint8Array): Promise<Uint8Array> {
      const s = scaled.get(name);
      if (!s) return src.read(name, dest);
      const values = toF32(s.from, await src.read(name));
      const { scale } = s;
      if (typeof scale === 'number') for (let i = 0; i < values.length; i++) values[i] *= scale;
      else {
        const cols = values.length / scale.length;
        for (let r = 0; r < scale.length; r++) for (let j = r * cols; j < (r + 1) * cols; j++) values[j] *= scale[r];
      }
      const out =
        s.to === 'F32'
          ? new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
          : new Uint8Array(f32ToHalf(values, s.to === 'F16' ? 'f16' : 'bf16').buffer);
      if (!dest) return out;
      if (dest.byteLength !== out.byteLength)
        fail('BAD_ARGUMENT', `read ${name}: destination has ${dest.byteLength} bytes, the tensor ${out.byteLength}`);
      dest.set(out);
      return dest;
    },
    close: () => src.close(),
  };
}

/** Stored little-endian bytes of a float tensor as a new Float32Array. */
function toF32(e: TensorEntry, bytes: Uint8Array): Float32Array {
  const copy = bytes.slice(); // aligned, and ours to scale in place
  switch (e.dtype) {
    case 'F32':
      return new Float32Array(copy.buffer);
    case 'F64':
      return Float32Array.from(new Float64Array(copy.buffer));
    default:
      return halfToF32(new Uint16Array(copy.buffer), e.dtype === 'F16' ? 'f16' : 'bf16');
  }
}
