import { checkFusedLinear, type FusedLinearArgs } from '../../contract/decode.js';
import { fail } from '../../../errors.js';
import type { Tensor } from '../../../tensor/tensor.js';
import type { KernelHost } from '../kernel-host.js';
import { isWholeQ4 } from './launch.js';
import { MATVEC_MAX_M, matvec } from './matmul.js';

/**
 * Decode products with their neighbours fused (Backend.fusedLinear): one `matvec` dispatch with its
 * prologue (the block's RMSNorm, SwiGLU's silu(gate) · up, or Mamba-2's gated norm of one group), its
 * scaled accumulation into the residual stream, and Mamba's conv step on a range of output columns.
 * It takes what the matrix-vector kernel takes: up to MATVEC_MAX_M rows, weights of any float dtype or
 * whole q4 tensors (not views of them).
 */
export function fusesLinear(rows: number, weights: readonly Tensor[]): boolean {
  return rows >= 1 && rows <= MATVEC_MAX_M && weights.every((w) => w.dtype !== 'q4' || isWholeQ4(w));
}

export function fusedLinear(bk: KernelHost, a: FusedLinearArgs): void {
  const { m, q, p } = checkFusedLinear(a);
  if (!fusesLinear(m, [a.weight]))
    fail(
      'UNSUPPORTED',
      `fusedLinear on WebGPU: ${m} rows with ${a.weight.toString()} is not fused (at most ${MATVEC_MAX_M} rows, whole q4 tensors); ask fusesLinear first`,
    );
  const c = a.conv;
  const norm = a.norm ?? (a.gate?.weight ? { weight: a.gate.weight, eps: a.gate.eps } : null);
  matvec(
    bk,
    a.out,
    a.x,
    a.weight,
    a.bias ?? null,
    a.accumulate !== undefined,
    m,
    q,
    p,
    c ? { e: c.weight.rows, weight: c.weight, bias: c.bias, state: c.state } : null,
    norm,
    {
      alpha: a.accumulate ?? 1,
      convFrom: c?.from ?? 0,
      prologue: a.glu
        ? { kind: 'glu' }
        : a.gate
          ? { kind: 'gate', z: a.gate.z, normBeforeGate: a.gate.normBeforeGate }
          : null,
    },
  );
}
