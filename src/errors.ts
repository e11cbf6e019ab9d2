/**
 * Errors a user can act on. Every error mamba-ts throws on purpose is a MambaError with a stable
 * `code` (for programs) and a message that names what is wrong and what was expected (for people).
 * The CLI prints `error[code]: message` without a stack trace for these, and a stack for anything else
 * (a bug in mamba-ts).
 */
export type ErrorCode =
  | 'BAD_ARGUMENT' // an option or argument has the wrong value or type
  | 'UNKNOWN_OPTION' // an option that does not exist
  | 'SHAPE_MISMATCH' // a tensor's shape is not what an op or a checkpoint expects
  | 'DTYPE_MISMATCH' // a tensor's dtype is not one the op accepts
  | 'BACKEND_MISMATCH' // tensors from two backends meet in one op
  | 'FILE_NOT_FOUND' // a path that does not exist
  | 'CORRUPT_FILE' // a file whose contents do not follow its format
  | 'UNSUPPORTED' // a valid input that mamba-ts does not handle (architecture, dtype, feature)
  | 'CONFIG_MISMATCH' // config.json and the weights disagree
  | 'TOKEN_OUT_OF_RANGE' // a token id outside [0, vocab)
  | 'EMPTY_INPUT' // an empty prompt or token list
  | 'NON_FINITE' // NaN or Inf in weights, activations or logits
  | 'NETWORK' // a download failed
  | 'OFFLINE' // HF_HUB_OFFLINE is set and the file is not cached
  | 'DEVICE' // the GPU device was lost, ran out of memory or is missing
  | 'STATE_MISMATCH' // a recurrent state that does not fit the model or batch
  | 'INTERRUPTED' // the user stopped a long operation
  | 'IO'; // the file system refused: read-only, full, permission, a file where a directory should be

export class MambaError extends Error {
  readonly code: ErrorCode;
  /** Extra structured facts (file, tensor, expected, actual), for programs and tests. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'MambaError';
    this.code = code;
    this.details = details;
  }
}

/** Throws a MambaError; handy in expressions: `x ?? fail('BAD_ARGUMENT', '...')`. */
export function fail(code: ErrorCode, message: string, details: Record<string, unknown> = {}): never {
  throw new MambaError(code, message, details);
}

export function isMambaError(e: unknown, code?: ErrorCode): e is MambaError {
  return e instanceof MambaError && (code === undefined || e.code === code);
}

/** `[2, 3]` -> `(2, 3)`; the one spelling of a shape in every message. */
export function fmtShape(shape: readonly number[]): string {
  return `(${shape.join(', ')})`;
}
