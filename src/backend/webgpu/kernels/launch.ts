import { fail } from '../../../errors.js';
import type { DType } from '../../../tensor/dtype.js';

/** Helpers shared by the kernel launchers. */

/** The WGSL dtype code of a float tensor: 0 f32, 1 f16, 2 bf16. */
export function dcode(d: DType): number {
  return d === 'f16' ? 1 : d === 'bf16' ? 2 : 0;
}

/** Workgroups for `n` threads in groups of `wg`, folded into two dimensions past 65535. */
export function grid(n: number, wg = 256): [number, number] {
  const groups = Math.ceil(n / wg);
  if (groups <= 65535) return [groups, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

/** Rows split over grid y and z (each at most 65535). */
export function rowsGrid(rows: number): [number, number] {
  if (rows <= 65535) return [rows, 1];
  const z = Math.ceil(rows / 65535);
  return [Math.ceil(rows / z), z];
}

/** WGSL indexes buffers with u32: refuse element indices that would not fit. */
export function checkIndex(op: string, lastElement: number): void {
  if (lastElement >= 2 ** 32) fail('UNSUPPORTED', `${op}: element index ${lastElement} exceeds 2^32`);
}
