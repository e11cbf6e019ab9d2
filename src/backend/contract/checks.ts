import { fail } from '../../errors.js';
import type { Tensor } from '../../tensor/tensor.js';

/**
 * Shape and dtype checks shared by every backend: each kernel's check (next to its argument types in
 * memory.ts, inference.ts, decode.ts, training.ts, mixers.ts) runs before the kernel, so a wrong call
 * fails with the op's name and the expected and actual shapes, never with wrong numbers or a GPU
 * fault. These two are the pieces every one of them starts with.
 */

export function checkFloat(op: string, what: string, t: Tensor, allowHalf = false, allowQ8 = false): void {
  t.assertLive();
  const ok =
    t.dtype === 'f32' || (allowHalf && (t.dtype === 'f16' || t.dtype === 'bf16')) || (allowQ8 && t.dtype === 'q8');
  if (!ok)
    fail(
      'DTYPE_MISMATCH',
      `${op}: ${what} has dtype ${t.dtype}, expected f32${allowHalf ? (allowQ8 ? ', f16, bf16 or q8' : ', f16 or bf16') : ''}`,
    );
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
