/**
 * Tracing: what the selection mechanism did on a prompt, from the model's own activations.
 *
 * For each SSM layer, one parallel forward pass hands the mixer's Δ, B, C and scan input u to a hook
 * (MambaMixer.onActivations, and the same on S6Core, S4DCore, Mamba2Mixer: null when not tracing;
 * taps.ts reads each kind), and from them the tracer derives (Mamba-1 and S6; series.ts):
 *   Δ_t,c = softplus(dt_proj(dt_low_t)_c + bias_c)           (l, e) where the gate opens (large) or holds
 *   |h_t| = Frobenius norm of the state after token t         (l)    h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t
 *   |B_t|, |C_t|                                               (l)    how strongly a token is written / read
 *   memory_t,c = how many of the last tokens still weigh ≥ 1/e in channel c's slowest state:
 *                token j's input is scaled by exp(A_c Σ_{s=j+1..t} Δ_s) by the time of token t
 *                (A_c = max_n A[c, n], the least negative), so memory_t,c = t - j* + 1 for the
 *                earliest j* with A_c Σ ≥ -1; it equals t + 1 where the whole prefix is remembered.
 * The recurrence is rerun here in f64 from those activations: it is the specification's scan, not
 * the backend's kernel, so the numbers are the same on every backend. Mamba-2 has one Δ per head and
 * a scalar A per head; S4D's Δ is one constant per channel (time-invariant): see taps.ts.
 */
import { fail } from '../errors.js';
import type { LanguageModel, LmConfig } from '../models/lm.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LayerTrace } from './series.js';
import { tapOf, type TracedKind } from './taps.js';

export { layerTrace, memoryLength, type LayerTrace } from './series.js';
export type { TracedKind } from './taps.js';

export interface ModelTrace {
  readonly tokens: readonly number[];
  /** Each token's text, when the caller knows the tokenizer. */
  readonly pieces: readonly string[];
  readonly length: number;
  /** The layers' kind (taps.ts): 'mamba', 's6', 's4d' or 'mamba2'. */
  readonly kind: TracedKind;
  /** What one of Δ's columns is: a channel, or (Mamba-2: one Δ per head) a head. */
  readonly unit: 'channel' | 'head';
  /** Δ's width: channels, or heads for Mamba-2. */
  readonly channels: number;
  readonly dState: number;
  readonly layers: readonly LayerTrace[];
}

/**
 * Runs `ids` (one sequence) through the model and returns every SSM layer's trace. In a hybrid
 * (Granite 4.0-H, Bamba, Nemotron-H, ...) the Mamba-2 blocks are traced and the attention and MLP
 * blocks left out: `layers[k].layer` is the block's index in the model.
 */
export async function traceModel(
  lm: LanguageModel<LmConfig>,
  ids: readonly number[],
  pieces: readonly string[] = [],
): Promise<ModelTrace> {
  if (ids.length === 0) fail('EMPTY_INPUT', 'trace: the prompt has no tokens');
  // the SSM blocks; a hybrid's attention and MLP blocks are left out (their index stays each trace's `layer`)
  const found = lm.blocks.map((b) => tapOf(b.mixer));
  const traced = found.flatMap((tap, i) => (tap ? [{ tap, block: i }] : []));
  if (traced.length === 0)
    fail(
      'UNSUPPORTED',
      `trace: layer 0 is a "${lm.blocks[0]?.mixer.kind}" mixer and no layer is one the tracer reads ` +
        '(Mamba-1, Mamba-2, S6 and S4D layers only)',
    );
  const taps = traced.map((x) => x.tap);
  const kept = new Set<Tensor>(); // activations kept past the pass until read (their bases, for views)
  const grab = (t: Tensor): Promise<Float32Array> => {
    const base = t.base ?? t;
    if (!base.kept) kept.add(base.keep());
    return t.readFloat();
  };
  let layers: LayerTrace[];
  try {
    for (const tap of taps) tap.attach(grab);
    const idT = lm.backend.upload(Int32Array.from(ids), [1, ids.length], 'i32');
    const last = lm.forward(idT, { lastOnly: true });
    layers = await Promise.all(traced.map(({ tap, block }) => tap.result(block, ids.length)));
    last.dispose();
    idT.dispose();
  } finally {
    for (const tap of taps) tap.detach();
    for (const t of kept) t.dispose();
  }
  const first = taps[0];
  return {
    tokens: [...ids],
    pieces: [...pieces],
    length: ids.length,
    kind: first.kind,
    unit: first.kind === 'mamba2' ? 'head' : 'channel',
    channels: first.channels,
    dState: first.dState,
    layers,
  };
}

/** The trace as plain JSON: (l, e) arrays become one array per token. */
export function traceToJson(tr: ModelTrace): unknown {
  const rows = (a: Float32Array, w: number): number[][] =>
    Array.from({ length: a.length / w }, (_, t) => Array.from(a.subarray(t * w, (t + 1) * w)));
  return {
    format: 'mamba-ts-trace/1',
    kind: tr.kind,
    unit: tr.unit,
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
