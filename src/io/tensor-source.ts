/**
 * What every checkpoint reader (safetensors, sharded safetensors, PyTorch zip/pickle) gives the model
 * loader: a list of named tensors and a way to read one tensor's raw bytes at a time, so a multi-GB
 * checkpoint is never held in one buffer.
 */

/** Element types as checkpoint formats name them (safetensors spelling). */
export type StoredDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export interface TensorEntry {
  /** Name in the checkpoint, e.g. `backbone.layers.0.mixer.A_log`. */
  readonly name: string;
  readonly dtype: StoredDType;
  readonly shape: readonly number[];
  /** Bytes of the tensor's data (elements x element size). */
  readonly byteLength: number;
}

export interface TensorSource {
  /** Where the tensors come from (a path, or a description), for messages. */
  readonly description: string;
  /** Every tensor, by name. */
  readonly entries: ReadonlyMap<string, TensorEntry>;
  /** Free-form string metadata (safetensors `__metadata__`), empty when the format has none. */
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * Bytes of the files behind the tensors (headers included): what the model loader compares the
   * config's parameter count with before it builds anything. Absent for sources made in memory.
   */
  readonly storedBytes?: number;
  /**
   * Reads one tensor's data, little-endian, row-major and contiguous, into `dest` when given (it must
   * be exactly `byteLength` bytes) or into a new buffer. Throws MambaError on I/O errors or truncation.
   */
  read(name: string, dest?: Uint8Array): Promise<Uint8Array>;
  /** Releases file handles. */
  close(): Promise<void>;
}

export const STORED_DTYPE_BYTES: Readonly<Record<StoredDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};
