import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import type { Mixer, MixerState } from '../mixers/mixer.js';
import { falconH1WeightScales } from '../models/build-falcon-h1.js';
import type { HybridConfig } from '../models/config-hybrid.js';
import type { ModelConfig } from '../models/config.js';
import type { LanguageModel } from '../models/lm.js';
import * as F from '../ops/ops.js';
import { scaleRows } from '../ops/scale-rows.js';
import { isGradEnabled, noGrad } from '../tensor/grad-mode.js';
import { needsGrad, type Tensor } from '../tensor/tensor.js';

/**
 * Training a model whose loader folded constant multipliers into its weights (Falcon-H1's muP
 * multipliers, build-falcon-h1.ts: W' = s ⊙ W, so inference pays nothing for them). The checkpoint's
 * weight is W: the gradient, AdamW's step and the file written must be W's, not W''s. So for training
 * each folded weight gets its checkpoint value back, W = W' / s, as the parameter the trainer sees (under
 * the checkpoint's name), and the mixers that hold W' are wrapped (`UnfoldedMixer`):
 *   forward under grad:  W' = s ⊙ W recorded (the gradient reaches W times s), then the mixer's forward
 *   forward without grad, step: the folded W', refreshed from W after each optimiser step (parametersChanged)
 * s is a number, or one factor per row (a Linear weight's outputs: in_proj's parts).
 */
interface Slot {
  /** The mixer's weights record and key that hold W'. */
  holder: Record<string, unknown>;
  key: string;
  folded: Tensor; // W'
  raw: Tensor; // W, the parameter
  /** A number; per row of a matrix, (R, 1); per element of a vector (a bias), (R). */
  scale: number | Tensor;
  /** The loader's factors (scaled-source.ts): a number (f64), or one per row / element. */
  factors: number | Float32Array;
}

class UnfoldedMixer implements Mixer {
  readonly kind: string;

  constructor(
    readonly inner: Mixer,
    readonly slots: readonly Slot[],
  ) {
    this.kind = inner.kind;
  }

  private scaled(s: Slot): Tensor {
    return scaled(s.raw, s.scale);
  }

  forward(x: Tensor, state?: MixerState, position?: number): Tensor {
    if (!isGradEnabled() || !needsGrad(...this.slots.map((s) => s.raw))) return this.inner.forward(x, state, position);
    for (const s of this.slots) s.holder[s.key] = this.scaled(s);
    try {
      return this.inner.forward(x, state, position);
    } finally {
      for (const s of this.slots) s.holder[s.key] = s.folded;
    }
  }

  step(x: Tensor, out: Tensor, state: MixerState, position?: number): void {
    this.inner.step(x, out, state, position);
  }

  initState(batch: number): MixerState {
    return this.inner.initState(batch);
  }

  stateShapes(): Record<string, readonly number[]> {
    return this.inner.stateShapes();
  }

  parameters(): Map<string, Tensor> {
    const raw = new Map(this.slots.map((s) => [s.folded, s.raw]));
    return new Map([...this.inner.parameters()].map(([k, t]) => [k, raw.get(t) ?? t]));
  }

  parametersChanged(): void {
    for (const s of this.slots) refold(s);
    this.inner.parametersChanged();
  }

  dispose(): void {
    (this.inner as { dispose?: () => void }).dispose?.();
  }
}

/**
 * W' = s ⊙ W again after W changed. Where the host reads the memory (the CPU) as the loader folds it
 * (scaled-source.ts: each product in f64, rounded once to f32), so the model reloaded from the checkpoint
 * written is this one bit for bit; elsewhere by the backend's product (within an ulp of it).
 */
function refold(s: Slot): void {
  const bk = s.raw.backend as Backend;
  const hr = bk.hostView?.(s.raw),
    hf = bk.hostView?.(s.folded);
  // (dense: its elements consecutive from its offset, as a row view of a stacked matrix, stack-rows.ts)
  const dense = (t: Tensor): boolean => t.isContiguous || t.ld === t.cols;
  if (hr && hf && dense(s.raw) && dense(s.folded)) {
    const n = s.raw.size,
      f = s.factors;
    const per = typeof f === 'number' ? 0 : n / f.length; // elements per factor
    for (let i = 0; i < n; i++)
      hf.data[hf.off + i] = hr.data[hr.off + i] * (typeof f === 'number' ? f : f[Math.floor(i / per)]);
    return;
  }
  noGrad(() => {
    const w = scaled(s.raw, s.scale);
    bk.copy(s.folded, w);
    w.dispose();
  });
}

/** w times a number, per row (s (R, 1)) or per element (s (R), w a vector). */
function scaled(w: Tensor, s: number | Tensor): Tensor {
  if (typeof s === 'number') return F.mul(w, constantRow(w.backend as Backend, s, w.cols));
  return s.rank === 1 ? F.mul(w, s) : scaleRows(w, s);
}

function constantRow(bk: Backend, value: number, n: number): Tensor {
  return bk.upload(new Float32Array(n).fill(value), [n]);
}

/** The weights records of a mixer and of its parts (ParallelMixers), where folded tensors sit. */
function holders(m: Mixer): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const w = (m as { w?: unknown }).w;
  if (w && typeof w === 'object') out.push(w as Record<string, unknown>);
  const parts = (m as { parts?: Record<string, Mixer> }).parts;
  if (parts) for (const p of Object.values(parts)) out.push(...holders(p));
  return out;
}

/**
 * Unfolds Falcon-H1's multipliers for training (see the file comment); other models are left as they are.
 * Run once, after loading and before the trainer takes the parameters.
 */
export function unfoldMultipliers(lm: LanguageModel<ModelConfig | HybridConfig>): void {
  const c = lm.config;
  if (c.arch !== 'falcon_h1' || !c.muP) return;
  const scales = falconH1WeightScales(c, c.muP);
  const bk = lm.backend;
  lm.blocks.forEach((blk, i) => {
    const prefix = blk.names?.mixer ?? '';
    const slots: Slot[] = [];
    const hs = holders(blk.mixer);
    for (const [name, folded] of blk.mixer.parameters()) {
      const s = scales.get(`${prefix}${name}`);
      if (s === undefined) continue;
      const values = typeof s === 'number' ? [s] : [...s];
      if (values.some((v) => v === 0 || !Number.isFinite(v)))
        fail(
          'CONFIG_MISMATCH',
          `falcon_h1: ${prefix}${name} is multiplied by 0 or a non-finite number; it cannot be trained`,
        );
      const holder = hs.find((h) => Object.values(h).includes(folded));
      const key = holder && Object.keys(holder).find((k) => holder[k] === folded);
      if (!holder || !key)
        fail('CONFIG_MISMATCH', `falcon_h1: ${prefix}${name} is not held by its mixer (internal error)`);
      const R = typeof s === 'number' ? 1 : s.length;
      const shape = folded.rank === 1 ? [R] : [R, 1];
      const scale = typeof s === 'number' ? s : bk.upload(s, shape).keep();
      const inverse =
        typeof s === 'number'
          ? 1 / s
          : bk.upload(
              Float32Array.from(s, (v) => 1 / v),
              shape,
            );
      const raw = noGrad(() => scaled(folded, inverse)).keep();
      raw.name = `${prefix}${name}`;
      const slot = { holder, key, folded, raw, scale, factors: s };
      refold(slot); // the model as it will reload from the checkpoint written
      slots.push(slot);
    }
    if (slots.length) lm.blocks[i] = { ...blk, mixer: new UnfoldedMixer(blk.mixer, slots) };
  });
}
