import { fail } from '../../../errors.js';
import type { DType } from '../../../tensor/dtype.js';
import type { Tensor } from '../../../tensor/tensor.js';
import type { GpuStorage } from '../gpu-buffers.js';
import type { KernelHost } from '../kernel-host.js';
import { q4Layout } from '../../cpu/reference/q4.js';

/** Helpers shared by the kernel launchers. */

/** The WGSL dtype code of a float tensor: 0 f32, 1 f16, 2 bf16, 3 q4 (matmul's b, embedding's table). */
export function dcode(d: DType): number {
  return d === 'f16' ? 1 : d === 'bf16' ? 2 : d === 'q4' ? 3 : 0;
}

/** Half index of a q4 tensor's scales in its buffer (after rows x ld / 2 bytes of quants); 0 otherwise. */
export function q4Scales(t: Tensor): number {
  return t.dtype === 'q4' ? (t.rows * t.ld) / 4 : 0;
}

/** The q4 kernels read whole tensors (offset 0, the padded ld): views (narrow) of q4 are refused. */
export function wholeQ4(t: Tensor): void {
  if (!isWholeQ4(t)) fail('UNSUPPORTED', `${t.toString()}: views (narrow) of q4 tensors are not supported`);
}

/** Whether a q4 tensor is whole (not a view), as the q4 kernels need. */
export function isWholeQ4(t: Tensor): boolean {
  const whole = !t.base || (t.base.rows === t.rows && t.base.cols === t.cols);
  return t.offset === 0 && whole && t.ld === q4Layout(t.rows, t.cols).ld;
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

const specialised = new Map<string, string>();
/**
 * `code` with each `const NAME: u32 = ...u;` set to the given value (cached under `name` and the
 * values): private array sizes and workgroup tiles must be constants, not overrides.
 */
export function withConsts(name: string, code: string, consts: Record<string, number>): string {
  const key = `${name}:${Object.entries(consts).join()}`;
  let c = specialised.get(key);
  if (!c) {
    c = code;
    for (const [k, v] of Object.entries(consts))
      c = c.replace(new RegExp(`const ${k}: u32 = \\d+u;`), `const ${k}: u32 = ${v}u;`);
    specialised.set(key, c);
  }
  return c;
}

/** Same storage and same window: a kernel can read and write it in place, element by element. */
export function sameView(a: Tensor, b: Tensor): boolean {
  return a.storage === b.storage && a.offset === b.offset && a.ld === b.ld;
}

/** A scan's initial state: 0 zeros, 1 the rows of h0, 3 hOut's rows (h0 = hOut, the same window: read in place). */
export function initialState(
  bk: KernelHost,
  h0: Tensor | null | undefined,
  hOut: Tensor | null | undefined,
): { hin: number; h0: GpuStorage } {
  if (!h0) return { hin: 0, h0: bk.dummyR };
  return hOut && sameView(h0, hOut) ? { hin: 3, h0: bk.dummyR } : { hin: 1, h0: bk.buf(h0) };
}
