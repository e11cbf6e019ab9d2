import { fail, fmtShape } from '../../errors.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkFloat, checkSameBackend } from './checks.js';

/**
 * One decode token's keys and values into the KV cache, in one kernel (the fused form of what the
 * attention step otherwise does as rotary(k) + a copy of each row's key and value + the counters):
 *   kCache[r, p_r, :] = rotary(k[r, :], p_r)     vCache[r, p_r, :] = v[r, :]     length[r] = p_r + 1
 * for each sequence r of b, at p_r = start, or rowStarts[r] (a decode batch of sequences at different
 * positions). rotary: GPT-NeoX half-split RoPE on the first `dim` columns of each head of `headDim`
 * (as `rotary` with headDim = dim on each head's leading columns); absent for no positional encoding.
 * k, v (b, w): views of one tensor (e.g. (b, 1, w) columns of the attention step's [q; k; v]: a kernel that
 * writes one of them in place cannot also bind the others apart); kCache, vCache (b, cap, w) contiguous;
 * length, rowStarts (b) f32. `q` (b, qw), qw a multiple of headDim, with rotary, a view of the same tensor:
 * the token's queries, rotated in place at the same positions in the same kernel (the attention step's
 * other rotary launch).
 * Optional: a backend without it runs the separate kernels (the CPU writes its cache in place anyway).
 */
export interface KvAppendArgs {
  k: Tensor;
  v: Tensor;
  kCache: Tensor;
  vCache: Tensor;
  length: Tensor;
  start: number;
  rowStarts?: Tensor;
  rotary?: { dim: number; headDim: number; base: number };
  q?: Tensor;
}

/** Checks the arguments; returns b, the cache's capacity and the row width w. */
export function checkKvAppend(a: KvAppendArgs): { b: number; cap: number; w: number } {
  const op = 'kvAppend';
  checkSameBackend(op, a.k, a.v, a.kCache, a.vCache, a.length, a.rowStarts);
  for (const [what, t] of [
    ['k', a.k],
    ['v', a.v],
    ['kCache', a.kCache],
    ['vCache', a.vCache],
    ['length', a.length],
  ] as const)
    checkFloat(op, what, t);
  const kc = a.kCache;
  if (kc.rank !== 3) fail('SHAPE_MISMATCH', `${op}: kCache must be (b, capacity, width), got ${fmtShape(kc.shape)}`);
  const [b, cap, w] = kc.shape as [number, number, number];
  const same = (t: Tensor): boolean => t.shape.length === 3 && t.shape.every((n, i) => n === kc.shape[i]);
  if (!same(a.vCache) || !kc.isContiguous || !a.vCache.isContiguous)
    fail('SHAPE_MISMATCH', `${op}: kCache and vCache must both be contiguous ${fmtShape(kc.shape)} caches`);
  for (const [what, t] of [
    ['k', a.k],
    ['v', a.v],
  ] as const)
    if (t.rows !== b || t.cols !== w)
      fail('SHAPE_MISMATCH', `${op}: ${what} must hold ${b} rows of ${w}, got ${fmtShape(t.shape)}`);
  for (const t of [a.length, a.rowStarts])
    if (t && (t.size !== b || t.rank !== 1))
      fail('SHAPE_MISMATCH', `${op}: length and rowStarts must be (${b}), got ${fmtShape(t.shape)}`);
  if (!a.rowStarts && !(Number.isInteger(a.start) && a.start >= 0 && a.start < cap))
    fail('BAD_ARGUMENT', `${op}: position ${a.start} is outside the cache's ${cap} rows`);
  const r = a.rotary;
  if (r && !(r.dim > 0 && r.dim % 2 === 0 && r.dim <= r.headDim && w % r.headDim === 0))
    fail('BAD_ARGUMENT', `${op}: rotary on ${r.dim} of each ${r.headDim} columns does not fit rows of ${w}`);
  if (a.q) {
    checkSameBackend(op, a.q, a.k);
    checkFloat(op, 'q', a.q);
    if (!r) fail('BAD_ARGUMENT', `${op}: q is rotated with the keys' rotary, and none was given`);
    if (a.q.rows !== b || a.q.cols % r.headDim !== 0)
      fail('SHAPE_MISMATCH', `${op}: q must hold ${b} rows of whole heads of ${r.headDim}, got ${fmtShape(a.q.shape)}`);
  }
  const owner = (t: Tensor): Tensor => t.base ?? t;
  if (owner(a.v) !== owner(a.k) || (a.q && owner(a.q) !== owner(a.k)))
    fail('BAD_ARGUMENT', `${op}: k, v${a.q ? ' and q' : ''} must be views of one tensor (the step's [q; k; v])`);
  return { b, cap, w };
}
