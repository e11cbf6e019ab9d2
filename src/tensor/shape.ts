import { fail, fmtShape } from '../errors.js';

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Checks a shape against a pattern: numbers must match, `-1` matches anything.
 * `op` and `what` name the place in the error: "matmul: b has shape (3, 4), expected (5, 4)".
 */
export function checkShape(op: string, what: string, actual: readonly number[], expected: readonly number[]): void {
  const ok = actual.length === expected.length && expected.every((e, i) => e === -1 || e === actual[i]);
  if (!ok) {
    const exp = `(${expected.map((e) => (e === -1 ? '*' : String(e))).join(', ')})`;
    fail('SHAPE_MISMATCH', `${op}: ${what} has shape ${fmtShape(actual)}, expected ${exp}`, {
      op,
      what,
      actual,
      expected,
    });
  }
}

export function checkPositiveInt(op: string, what: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) fail('BAD_ARGUMENT', `${op}: ${what} must be a positive integer, got ${v}`);
}
