/**
 * Tracing: what the selection mechanism did on a prompt, from the model's own activations.
 *
 * For each Mamba-1 layer, one parallel forward pass hands the mixer's Δ, B, C and scan input u to a
 * hook (MambaMixer.onActivations, null when not tracing), and from them this file derives:
 *   Δ_t,c = softplus(dt_proj(dt_low_t)_c + bias_c)           (l, e) where the gate opens (large) or holds
 *   |h_t| = Frobenius norm of the state after token t         (l)    h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t
 *   |B_t|, |C_t|                                               (l)    how strongly a token is written / read
 *   memory_t,c = how many of the last tokens still weigh ≥ 1/e in channel c's slowest state:
 *                token j's input is scaled by exp(A_c Σ_{s=j+1..t} Δ_s) by the time of token t
 *                (A_c = max_n A[c, n], the least negative), so memory_t,c = t - j* + 1 for the
 *                earliest j* with A_c Σ ≥ -1; it equals t + 1 where the whole prefix is remembered.
 * The recurrence is rerun here in f64 from those activations: it is the specification's scan, not
 * the backend's kernel, so the numbers are the same on every backend.
 */
import { fail } from '../errors.js';
import { softplus } from '../backend/cpu/reference/math.js';
import { MambaMixer, type MambaActivations } from '../mixers/mamba.js';
import type { LanguageModel, LmConfig } from '../models/lm.js';

export interface LayerTrace {
  readonly layer: number;
  /** (l, e) row-major: Δ after bias and softplus. */
  readonly delta: Float32Array;
  /** (l, e): tokens remembered with weight ≥ 1/e by each channel's slowest state. */
  readonly memoryLength: Float32Array;
  /** (l): |h_t| over the whole (e, n) state. */
  readonly stateNorm: Float32Array;
  /** (l) */
  readonly bNorm: Float32Array;
  /** (l) */
  readonly cNorm: Float32Array;
}

export interface ModelTrace {
  readonly tokens: readonly number[];
  /** Each token's text, when the caller knows the tokenizer. */
  readonly pieces: readonly string[];
  readonly length: number;
  readonly channels: number;
  readonly dState: number;
  readonly layers: readonly LayerTrace[];
}

interface Captured {
  u: Float32Array;
  delta: Float32Array;
  B: Float32Array;
  C: Float32Array;
  A: Float32Array;
  bias: Float32Array;
}

type T = MambaActivations['u'];

/** Runs `ids` (one sequence) through the model and returns every Mamba layer's trace. */
export async function traceModel(
  lm: LanguageModel<LmConfig>,
  ids: readonly number[],
  pieces: readonly string[] = [],
): Promise<ModelTrace> {
  if (ids.length === 0) fail('EMPTY_INPUT', 'trace: the prompt has no tokens');
  const mixers = lm.blocks.map((b, i) => {
    if (!(b.mixer instanceof MambaMixer))
      fail('UNSUPPORTED', `trace: layer ${i} is a "${b.mixer.kind}" mixer; tracing reads Mamba-1 (S6) layers only`);
    return b.mixer;
  });
  const pending: Promise<Captured>[] = [];
  const kept = new Set<T>(); // activations kept past the pass until read (their bases, for views)
  const grab = (t: T): Promise<Float32Array> => {
    const base = t.base ?? t;
    if (!base.kept) kept.add(base.keep());
    return t.readFloat();
  };
  mixers.forEach((m) => {
    m.onActivations = (a) => {
      const reads = [grab(a.u), grab(a.delta), grab(a.B), grab(a.C), a.A.readFloat(), m.w.dtProjBias.readFloat()];
      pending.push(Promise.all(reads).then(([u, delta, B, C, A, bias]) => ({ u, delta, B, C, A, bias })));
    };
  });
  let captured: Captured[];
  try {
    const idT = lm.backend.upload(Int32Array.from(ids), [1, ids.length], 'i32');
    const last = lm.forward(idT, { lastOnly: true });
    captured = await Promise.all(pending);
    last.dispose();
    idT.dispose();
  } finally {
    for (const m of mixers) m.onActivations = null;
    for (const t of kept) t.dispose();
  }
  const { e, n } = mixers[0].dims;
  return {
    tokens: [...ids],
    pieces: [...pieces],
    length: ids.length,
    channels: e,
    dState: n,
    layers: captured.map((c, i) => layerTrace(i, c, ids.length, mixers[i].dims.e, mixers[i].dims.n)),
  };
}

/** The derived series of one layer (see the file comment for the formulas). */
export function layerTrace(layer: number, c: Captured, l: number, e: number, n: number): LayerTrace {
  const delta = new Float32Array(l * e);
  for (let t = 0; t < l; t++)
    for (let ch = 0; ch < e; ch++) delta[t * e + ch] = softplus(c.delta[t * e + ch] + c.bias[ch]);
  const h = new Float64Array(e * n);
  const stateNorm = new Float32Array(l);
  const bNorm = new Float32Array(l);
  const cNorm = new Float32Array(l);
  for (let t = 0; t < l; t++) {
    let ss = 0;
    for (let ch = 0; ch < e; ch++) {
      const dt = delta[t * e + ch];
      const du = dt * c.u[t * e + ch];
      for (let s = 0; s < n; s++) {
        const i = ch * n + s;
        h[i] = Math.exp(dt * c.A[i]) * h[i] + du * c.B[t * n + s];
        ss += h[i] * h[i];
      }
    }
    stateNorm[t] = Math.sqrt(ss);
    let sb = 0;
    let sc = 0;
    for (let s = 0; s < n; s++) {
      sb += c.B[t * n + s] ** 2;
      sc += c.C[t * n + s] ** 2;
    }
    bNorm[t] = Math.sqrt(sb);
    cNorm[t] = Math.sqrt(sc);
  }
  return { layer, delta, memoryLength: memoryLength(delta, c.A, l, e, n), stateNorm, bNorm, cNorm };
}

/** memory_t,c (file comment), by binary search over the prefix sums of Δ: O(l log l) per channel. */
export function memoryLength(delta: Float32Array, A: Float32Array, l: number, e: number, n: number): Float32Array {
  const out = new Float32Array(l * e);
  const P = new Float64Array(l + 1);
  for (let ch = 0; ch < e; ch++) {
    let a = -Infinity;
    for (let s = 0; s < n; s++) a = Math.max(a, A[ch * n + s]);
    const reach = a < 0 ? 1 / -a : Infinity; // Σ Δ a token can be behind and still weigh 1/e
    for (let t = 0; t < l; t++) P[t + 1] = P[t] + delta[t * e + ch];
    for (let t = 0; t < l; t++) {
      // earliest j with P[t+1] - P[j+1] <= reach, i.e. P[j+1] >= P[t+1] - reach
      const need = P[t + 1] - reach;
      let lo = 0;
      let hi = t;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (P[mid + 1] >= need) hi = mid;
        else lo = mid + 1;
      }
      out[t * e + ch] = t - lo + 1;
    }
  }
  return out;
}

/** The trace as plain JSON: (l, e) arrays become one array per token. */
export function traceToJson(tr: ModelTrace): unknown {
  const rows = (a: Float32Array, w: number): number[][] =>
    Array.from({ length: a.length / w }, (_, t) => Array.from(a.subarray(t * w, (t + 1) * w)));
  return {
    format: 'mamba-ts-trace/1',
    tokens: tr.tokens,
    pieces: tr.pieces,
    length: tr.length,
    channels: tr.channels,
    dState: tr.dState,
    layers: tr.layers.map((L) => ({
      layer: L.layer,
      delta: rows(L.delta, tr.channels),
      memoryLength: rows(L.memoryLength, tr.channels),
      stateNorm: Array.from(L.stateNorm),
      bNorm: Array.from(L.bNorm),
      cNorm: Array.from(L.cNorm),
    })),
  };
}
