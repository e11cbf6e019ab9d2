import type { Backend } from '../backend/backend.js';
import type { CausalAttentionWeights } from '../mixers/causal-attention.js';
import type { MlpWeights } from '../mixers/mlp.js';
import { isQuantized } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';

/**
 * Projections that read the same input, stacked at load: a checkpoint that stores attention's q_proj,
 * k_proj, v_proj (or the MLP's gate_proj, up_proj) as separate matrices is held in ONE storage, row
 * after row ([q; k; v] (pq + pk + pv, d); [gate; up] (2I, d)), and each named matrix becomes a row view
 * into it (offset r0 · d, ld d). Decoding then takes one product over the stack where it took three
 * (or two): on WebGPU one dispatch, on the CPU one pass over x (read and quantised once). The memory is
 * not doubled (the separate matrices are freed), and `parameters()`, saving and training still see
 * the original names and shapes: the views are the parameters, so an optimiser step writes the stack.
 *
 * Only float storage stacks (f32, f16, bf16). A q8/q4 tensor holds all its rows' quants and then all
 * its rows' scales in one buffer (backend/cpu/reference/q8.ts, q4.ts), so a block of its rows is not a
 * window of the stack's storage and cannot be a view: quantised weights keep the separate products.
 */

/** Each of `parts` (2-D, one dtype and width) as a row view of one new stacked tensor, or null. */
export function stackRows(backend: Backend, parts: readonly Tensor[]): { stack: Tensor; views: Tensor[] } | null {
  const first = parts[0];
  const d = first.cols;
  const ok = parts.every(
    (p) => p.rank === 2 && !p.base && p.isContiguous && p.dtype === first.dtype && p.cols === d && p.rows > 0,
  );
  if (!ok || isQuantized(first.dtype) || first.dtype === 'i32') return null;
  const rows = parts.reduce((n, p) => n + p.rows, 0);
  const stack = backend.alloc([rows, d], first.dtype).keep(); // (Σ rows, d)
  stack.name = parts.map((p) => p.name ?? '?').join(' + ');
  let r0 = 0;
  const views = parts.map((p) => {
    const v = new Tensor(backend, stack.storage, p.shape, p.dtype, r0 * d, d, stack).keep(); // (rows, d)
    v.name = p.name;
    backend.copy(v, p);
    p.dispose();
    r0 += p.rows;
    return v;
  });
  return { stack, views };
}

/** Vectors (biases) as windows of one new vector; null unless all are present 1-D f32. */
function stackVectors(backend: Backend, parts: readonly (Tensor | null)[]): { stack: Tensor; views: Tensor[] } | null {
  if (!parts.every((p): p is Tensor => p !== null && p.rank === 1 && !p.base && p.dtype === 'f32')) return null;
  const n = parts.reduce((s, p) => s + p.size, 0);
  const stack = backend.alloc([n]).keep(); // (Σ n)
  let at = 0;
  const views = parts.map((p) => {
    const v = new Tensor(backend, stack.storage, p.shape, p.dtype, at, p.size, stack).keep(); // (n)
    v.name = p.name;
    backend.copy(v, p);
    p.dispose();
    at += p.size;
    return v;
  });
  return { stack, views };
}

/**
 * The attention's weights with q, k, v stacked (`qkv`), when they can be: float storage, and biases on
 * all three or on none (one product adds one bias). Otherwise the weights as given.
 */
export function stackAttention(backend: Backend, w: CausalAttentionWeights): CausalAttentionWeights {
  const anyBias = w.qBias || w.kBias || w.vBias;
  if (anyBias && !(w.qBias && w.kBias && w.vBias)) return w;
  if (!canStack([w.q, w.k, w.v])) return w;
  const bias = anyBias ? stackVectors(backend, [w.qBias, w.kBias, w.vBias]) : null;
  if (anyBias && !bias) return w;
  const m = stackRows(backend, [w.q, w.k, w.v])!;
  const [q, k, v] = m.views;
  return {
    ...w,
    q,
    k,
    v,
    qkv: m.stack,
    ...(bias ? { qBias: bias.views[0], kBias: bias.views[1], vBias: bias.views[2], qkvBias: bias.stack } : {}),
  };
}

/**
 * The MLP's weights with gate and up stacked (`gateUp`, rows [gate; up] as Granite's input_linear), when
 * it has a separate gate (swiglu) and they can be; otherwise the weights as given.
 */
export function stackGateUp(backend: Backend, w: MlpWeights): MlpWeights {
  if (!w.gate || !canStack([w.gate, w.up])) return w;
  const anyBias = w.gateBias || w.upBias;
  if (anyBias && !(w.gateBias && w.upBias)) return w;
  const bias = anyBias ? stackVectors(backend, [w.gateBias, w.upBias]) : null;
  if (anyBias && !bias) return w;
  const m = stackRows(backend, [w.gate, w.up])!;
  const [gate, up] = m.views;
  return {
    ...w,
    gate,
    up,
    gateUp: m.stack,
    ...(bias ? { gateBias: bias.views[0], upBias: bias.views[1], gateUpBias: bias.stack } : {}),
  };
}

/** Whether `stackRows` would stack these (checked before any bias is moved). */
function canStack(parts: readonly Tensor[]): boolean {
  const first = parts[0];
  return (
    !isQuantized(first.dtype) &&
    first.dtype !== 'i32' &&
    parts.every((p) => p.rank === 2 && !p.base && p.isContiguous && p.dtype === first.dtype && p.cols === first.cols)
  );
}
