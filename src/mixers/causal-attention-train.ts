import * as F from '../ops/ops.js';
import { repeatHeads, rotaryHeads } from '../ops/heads.js';
import * as S from '../ops/sequence.js';
import type { Tensor } from '../tensor/tensor.js';

/** What the training form reads of CausalSelfAttention's weights and dims (causal-attention.ts). */
export interface AttentionParts {
  q: Tensor; // (H·dh, d)
  k: Tensor; // (G·dh, d)
  v: Tensor; // (G·dh, d)
  o: Tensor; // (out, H·dh)
  qBias: Tensor | null;
  kBias: Tensor | null;
  vBias: Tensor | null;
  oBias: Tensor | null;
  /** Low-rank adapters added to q, k, v before RoPE (Zamba2's shared block). */
  adapters?: { q: Adapter; k: Adapter; v: Adapter } | null;
}

interface Adapter {
  /** up(down(x)), recorded. */
  apply(x: Tensor): Tensor;
}
export interface AttentionShape {
  heads: number;
  kvHeads: number;
  headDim: number;
  rotaryDim: number;
  ropeTheta: number;
  scale: number;
}

/**
 * The differentiable form of the hybrids' causal self-attention (CausalSelfAttention), for training on
 * whole sequences from position 0, built from recorded ops:
 *   q = q_proj(x), k = k_proj(x), v = v_proj(x)            (b, l, H·dh), (b, l, G·dh)  [+ LoRA adapters]
 *   q, k = RoPE on the first rotaryDim dims of each head    (none for NoPE)
 *   k, v = each kv head repeated H/G times                  (b, l, H·dh)  (GQA; transformers' repeat_kv)
 *   o = softmax(scale · q kᵀ + causal mask) v;  out = o_proj(o)
 * The attention's gradient is the backend's attentionBackward kernel (ops/sequence.ts); the repeat's sums
 * the copies' gradients back into their kv head.
 */
export function attentionForward(w: AttentionParts, dims: AttentionShape, x: Tensor): Tensor {
  const { heads: H, kvHeads: G, headDim: dh, rotaryDim, ropeTheta, scale } = dims;
  const ad = w.adapters;
  const proj = (m: Tensor, bias: Tensor | null, a: Adapter | undefined): Tensor =>
    a ? F.add(F.linear(x, m, bias), a.apply(x)) : F.linear(x, m, bias);
  const q = rotaryHeads(proj(w.q, w.qBias, ad?.q), dh, rotaryDim, 0, ropeTheta); // (b, l, H·dh)
  const k = rotaryHeads(proj(w.k, w.kBias, ad?.k), dh, rotaryDim, 0, ropeTheta); // (b, l, G·dh)
  const v = proj(w.v, w.vBias, ad?.v); // (b, l, G·dh)
  const o = S.attention(q, repeatHeads(k, dh, H / G), repeatHeads(v, dh, H / G), H, scale); // (b, l, H·dh)
  return F.linear(o, w.o, w.oBias); // (b, l, out)
}
