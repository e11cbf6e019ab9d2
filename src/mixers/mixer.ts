import type { Tensor } from '../tensor/tensor.js';

/**
 * A sequence mixer: the part of a block that moves information along the sequence (Mamba's S6,
 * Mamba-2's SSD, S4D, attention, ...). Every mixer has the same two forms:
 *   forward(x (b, l, d)) -> (b, l, d)   the parallel form (prefill, training)
 *   step(x (b, d)) -> (b, d)            the recurrent form (one token; constant-size state for SSMs)
 * and both give the same outputs (tests prove it per mixer).
 */
export type MixerState = Record<string, Tensor>;

/**
 * The tokens a state has consumed, as `step` takes it: one count for every row, or one per row (a batch
 * of sequences at different context lengths: the server's decode batch; ModelState.rowPositions), or
 * held on the device (`DevicePositions`).
 */
export type StepPosition = number | readonly number[] | DevicePositions;

/**
 * Positions read by the kernels from device memory instead of passed by the host, so that a step's
 * launches do not depend on the position and one recording replays every token (Backend.record; the
 * device loop of a hybrid, generate/device-loop.ts): `rows` (b) f32, each row's tokens consumed, advanced
 * on the device by the model's step; `most`, the largest of them as the host tracks it, which only sizes
 * the caches (a position-dependent mixer grows its cache on the host to hold `most` + 1 and launches
 * over the whole capacity, each row bounded by its own count).
 */
export interface DevicePositions {
  readonly rows: Tensor;
  readonly most: number;
}

export function isDevicePositions(p: StepPosition | undefined): p is DevicePositions {
  return typeof p === 'object' && 'rows' in p;
}

export interface Mixer {
  /** Name of the architecture, for messages and `info`. */
  readonly kind: string;
  /**
   * Parallel form. With a state, starts from it and leaves in it the state after the sequence (in place),
   * so a long input can be fed in pieces.
   */
  forward(x: Tensor, state?: MixerState, position?: number): Tensor;
  /**
   * Recurrent form: x (b, d) -> out (b, d); updates `state` in place; allocates nothing after warm-up.
   * `position` (forward and step): the tokens the state has consumed, as the model knows them on the host
   * (ModelState.position), so a KV cache needs no device read to know its length.
   */
  step(x: Tensor, out: Tensor, state: MixerState, position?: StepPosition): void;
  /**
   * The recurrent form of the whole pre-norm residual block, where the backend fuses it:
   *   residual <- residual + scale · step(rmsnorm(residual) · norm)     residual (b, d) f32, norm (d)
   * (`scale`: the block's residual multiplier, default 1; `position` as `step` takes it). Returns false,
   * having done nothing, where it is not fused; the caller then runs addRmsnorm + `step`.
   */
  blockStep?(
    residual: Tensor,
    norm: Tensor,
    eps: number,
    state: MixerState,
    scale?: number,
    position?: StepPosition,
  ): boolean;
  /**
   * `blockStep` in two halves, for mixers that share one residual side by side (ParallelMixers: Falcon-H1's
   * attention and Mamba-2 both read rmsnorm(residual), and the residual takes both outputs): `blockRead`
   * does every launch that reads the residual (and the mixer's own work after them) and returns the write
   * that adds its output × scale into the residual. It is called only where `fusesBlock` said yes, which
   * asks before anything is done (a part half-fused cannot fall back: its state has advanced).
   */
  fusesBlock?(rows: number, state: MixerState): boolean;
  blockRead?(
    residual: Tensor,
    norm: Tensor,
    eps: number,
    state: MixerState,
    position?: StepPosition,
  ): (scale: number) => void;
  /** A zero state for `batch` sequences. */
  initState(batch: number): MixerState;
  /** Shapes of the state tensors for one sequence (batch dimension first, set to 1). */
  stateShapes(): Record<string, readonly number[]>;
  /** Trainable parameters by name relative to the mixer (`in_proj.weight`, `A_log`, ...). */
  parameters(): Map<string, Tensor>;
  /** Drops values derived from parameters (e.g. A = -exp(A_log)) after the parameters change. */
  parametersChanged(): void;
}

/**
 * A mixer's named parameters: its own (null: absent, e.g. a bias the config turns off), then each
 * part's under `<prefix>.` (an inner core or filter), in checkpoint order.
 */
export function parameterMap(
  own: readonly (readonly [string, Tensor | null])[],
  parts: Record<string, { parameters(): Map<string, Tensor> }> = {},
): Map<string, Tensor> {
  const m = new Map<string, Tensor>();
  for (const [k, t] of own) if (t) m.set(k, t);
  for (const [prefix, part] of Object.entries(parts))
    for (const [k, t] of part.parameters()) m.set(`${prefix}.${k}`, t);
  return m;
}
