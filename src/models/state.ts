import { fail, fmtShape } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import type { MixerState, StepPosition } from '../mixers/mixer.js';
import { sameShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * The recurrent state of a whole model for a batch of sequences: one MixerState per layer (for
 * Mamba, conv (b, e, k) and ssm (b, e, n)) and how many tokens each sequence has consumed.
 * It is a value: clone it to branch, serialise it to save a prompt's state and restore it later.
 * A Mamba layer's state does not depend on how many tokens it has seen; an attention layer's KV cache
 * (hybrid models) grows with the context: `constantBytes` and `bytesPerToken` tell the two apart.
 */
export class ModelState {
  constructor(
    readonly backend: Backend,
    readonly layers: MixerState[],
    readonly batch: number,
    /** Tokens consumed so far, the same for every row of the batch. */
    public position: number,
    /** Identifies the model shape the state belongs to (see LanguageModel.signature). */
    readonly signature: string,
    /** Each layer's state shapes per sequence (the mixers' stateShapes; -1 marks a dimension that grows per token). */
    readonly shapes?: readonly Record<string, readonly number[]>[],
  ) {}

  /**
   * Tokens each row has consumed, where the rows differ (a batch of sequences at different context
   * lengths, gathered row by row: the server's decode batch of a hybrid model, whose KV caches then hold
   * a length per row); null: every row is at `position`. Such a state only steps (`forward` refuses it).
   */
  rowPositions: number[] | null = null;

  /** The rows' positions held on the device too, and a vector of ones to advance them (holdPositionsOnDevice). */
  private device: { rows: Tensor; ones: Tensor } | null = null;

  /** What the mixers' step takes as the tokens consumed: per row where they differ; on the device while held. */
  get stepPosition(): StepPosition {
    if (this.device) return { rows: this.device.rows, most: this.mostPosition };
    return this.rowPositions ?? this.position;
  }

  /** The largest position of any row. */
  get mostPosition(): number {
    return this.rowPositions ? Math.max(this.position, ...this.rowPositions) : this.position;
  }

  /**
   * Keeps the rows' positions in device memory as well, where the steps read them and advance them
   * (DevicePositions), until `releasePositionsOnDevice`: the steps' launches then do not depend on the
   * position, so one recording of a step replays for every token (the device loop of a hybrid model).
   */
  holdPositionsOnDevice(): void {
    if (this.device) return;
    const b = this.batch;
    const rows = Float32Array.from({ length: b }, (_, r) => this.rowPositions?.[r] ?? this.position);
    this.device = {
      rows: this.backend.upload(rows, [b]).keep(),
      ones: this.backend.upload(new Float32Array(b).fill(1), [b]).keep(),
    };
  }

  releasePositionsOnDevice(): void {
    this.device?.rows.dispose();
    this.device?.ones.dispose();
    this.device = null;
  }

  /** Counts one more token consumed by every row (after a step), on the device too while its positions are held there. */
  advance(): void {
    this.count(1);
    const d = this.device;
    if (d) this.backend.binary('add', d.rows, d.rows, d.ones);
  }

  /**
   * Counts `tokens` more consumed by every row on the host only: after a replayed step, whose recording
   * advanced the device's positions itself.
   */
  count(tokens = 1): void {
    this.position += tokens;
    const r = this.rowPositions;
    if (r) for (let i = 0; i < r.length; i++) r[i] += tokens;
  }

  /**
   * Positions every growing tensor (each KV cache) holds without reallocating, Infinity where none grows: a
   * step at a position below it binds the same buffers, so a recording of one replays until then.
   */
  get capacity(): number {
    let cap = Infinity;
    this.forEachShape((t, shape, isGrowing) => {
      if (isGrowing) cap = Math.min(cap, t.dim(shape.indexOf(-1)));
    });
    return cap;
  }

  /** An independent copy. */
  clone(): ModelState {
    const layers = this.layers.map((l) => {
      const o: MixerState = {};
      for (const [k, t] of Object.entries(l)) {
        const c = this.backend.alloc(t.shape, t.dtype).keep();
        this.backend.copy(c, t);
        o[k] = c;
      }
      return o;
    });
    const c = new ModelState(this.backend, layers, this.batch, this.position, this.signature, this.shapes);
    c.rowPositions = this.rowPositions && [...this.rowPositions];
    return c;
  }

  /** Copies another state's values into this one (same model and batch). */
  copyFrom(other: ModelState): void {
    this.assertCompatible(other);
    this.layers.forEach((l, i) => {
      for (const [k, t] of Object.entries(l)) {
        const src = other.layers[i][k];
        if (sameShape(t.shape, src.shape)) this.backend.copy(t, src);
        else {
          // a KV cache of another capacity: take a copy of the other's
          const c = this.backend.alloc(src.shape, src.dtype).keep();
          this.backend.copy(c, src);
          t.dispose();
          l[k] = c;
        }
      }
    });
    this.position = other.position;
    this.rowPositions = other.rowPositions && [...other.rowPositions];
  }

  assertCompatible(other: ModelState): void {
    if (other.signature !== this.signature)
      fail('STATE_MISMATCH', `state belongs to another model (${other.signature}), expected ${this.signature}`);
    if (other.batch !== this.batch) fail('STATE_MISMATCH', `state has batch ${other.batch}, expected ${this.batch}`);
  }

  /** All state tensors by name: `layers.{i}.{name}`. */
  tensors(): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    this.layers.forEach((l, i) => {
      for (const [k, t] of Object.entries(l)) m.set(`layers.${i}.${k}`, t);
    });
    return m;
  }

  /** Total bytes held (f32), the KV caches' spare capacity included. */
  get bytes(): number {
    let n = 0;
    for (const t of this.tensors().values()) n += t.size * 4;
    return n;
  }

  /** Bytes that do not depend on the context (recurrent states, counters), for the whole batch. */
  get constantBytes(): number {
    let n = 0;
    this.forEachShape((t, _shape, isGrowing) => {
      if (!isGrowing) n += t.size * 4;
    });
    return n;
  }

  /** Bytes each token of context adds (the KV caches: 2 · kv width per attention layer), for the whole batch. */
  get bytesPerToken(): number {
    let n = 0;
    this.forEachShape((t, shape, isGrowing) => {
      if (isGrowing) n += t.dim(0) * shape.slice(1).reduce((a, b) => (b < 0 ? a : a * b), 1) * 4;
    });
    return n;
  }

  /**
   * Whether some layer keeps a KV cache (its size grows with the context; a batch's rows share one
   * capacity, and `forward` needs them at one position: ModelState.rowPositions).
   */
  get growsWithContext(): boolean {
    return this.shapes?.some((l) => Object.values(l).some((s) => s.some((d) => d < 0))) ?? false;
  }

  /** Each state tensor's per-sequence shape (from `shapes`, else the tensor's own) and whether it grows. */
  private forEachShape(f: (t: Tensor, shape: readonly number[], isGrowing: boolean) => void): void {
    this.layers.forEach((l, i) => {
      for (const [k, t] of Object.entries(l)) {
        const shape = this.shapes?.[i]?.[k] ?? [1, ...t.shape.slice(1)];
        f(
          t,
          shape,
          shape.some((d) => d < 0),
        );
      }
    });
  }

  dispose(): void {
    this.releasePositionsOnDevice();
    for (const t of this.tensors().values()) t.dispose();
  }

  /** Checks that a tensor loaded for `name` has the shape this state expects. */
  static checkTensor(name: string, expected: readonly number[], actual: readonly number[]): void {
    if (!sameShape(expected, actual))
      fail('STATE_MISMATCH', `state tensor ${name} has shape ${fmtShape(actual)}, expected ${fmtShape(expected)}`);
  }
}
