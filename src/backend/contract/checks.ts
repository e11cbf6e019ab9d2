import { fail } from '../../errors.js';
import type { DType } from '../../tensor/dtype.js';
import type { Tensor } from '../../tensor/tensor.js';

/**
 * Shape and dtype checks shared by every backend: each kernel's check (next to its argument types in
 * memory.ts, inference.ts, decode.ts, training.ts, mixers.ts) runs before the kernel, so a wrong call
 * fails with the op's name and the expected and actual shapes, never with wrong numbers or a GPU
 * fault. These two are the pieces every one of them starts with.
 */

/** `quantized`: the block-quantised weight formats (q8, q4) this operand may have on this backend. */
export function checkFloat(
  op: string,
  what: string,
  t: Tensor,
  allowHalf = false,
  quantized: readonly DType[] = [],
): void {
  t.assertLive();
  const ok =
    t.dtype === 'f32' || (allowHalf && (t.dtype === 'f16' || t.dtype === 'bf16')) || quantized.includes(t.dtype);
  if (!ok) {
    const more = allowHalf ? ['f16', 'bf16', ...quantized] : [];
    const expected = more.length ? `f32, ${more.slice(0, -1).join(', ')} or ${more[more.length - 1]}` : 'f32';
    fail('DTYPE_MISMATCH', `${op}: ${what} has dtype ${t.dtype}, expected ${expected}`);
  }
}

export function checkSameBackend(op: string, ...ts: (Tensor | null | undefined)[]): void {
  let first: Tensor | undefined;
  for (const t of ts) {
    if (!t) continue;
    t.assertLive();
    if (!first) first = t;
    else if (t.backend !== first.backend) {
      fail('BACKEND_MISMATCH', `${op}: tensors on ${first.backend.name} and ${t.backend.name} backends meet`);
    }
  }
}
