import { backendOf } from '../backend/backend.js';
import { fail } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';

/**
 * Row windows of a (b, cap, w) buffer (a KV cache, a history of inputs) as views without copies, for
 * the inference paths of attention and Hyena. Not recorded for autograd: only used under no recording
 * (generation, chunked prefill), where the mixers check that nothing requires a gradient.
 */

/** Row `pos` of every sequence: a (b, w) view with row stride cap·w. */
export function rowOfEach(t: Tensor, pos: number): Tensor {
  const [b, cap, w] = dims(t);
  if (pos < 0 || pos >= cap) fail('BAD_ARGUMENT', `row ${pos} is outside the ${cap} rows of each sequence`);
  return new Tensor(t.backend, t.storage, [b, w], t.dtype, t.offset + pos * t.ld, cap * t.ld, t.base ?? t);
}

/** Rows [start, start + count) of sequence `seq`: a (1, count, w) view. */
export function rowsOf(t: Tensor, seq: number, start: number, count: number): Tensor {
  const [b, cap, w] = dims(t);
  if (seq < 0 || seq >= b || start < 0 || count < 1 || start + count > cap)
    fail(
      'BAD_ARGUMENT',
      `rows [${start}, ${start + count}) of sequence ${seq} are outside a (${b}, ${cap}, ${w}) buffer`,
    );
  return new Tensor(
    t.backend,
    t.storage,
    [1, count, w],
    t.dtype,
    t.offset + (seq * cap + start) * t.ld,
    t.ld,
    t.base ?? t,
  );
}

function dims(t: Tensor): [number, number, number] {
  if (t.rank !== 3) fail('SHAPE_MISMATCH', `expected a (b, rows, width) buffer, got (${t.shape.join(', ')})`);
  return t.shape as [number, number, number];
}

/**
 * Reads a one-element counter synchronously (host-memory backends only: the KV cache and Hyena history
 * keep their length in the state).
 */
export function readCounter(t: Tensor): number {
  const host = backendOf(t).hostView?.(t);
  if (!host)
    fail(
      'UNSUPPORTED',
      `the ${t.backend.name} backend cannot read a state counter synchronously; incremental attention and Hyena run on the cpu backend`,
    );
  return host.data[host.off];
}

/** Writes a one-element counter (in place where the host addresses the backend's memory; else upload + copy). */
export function writeCounter(t: Tensor, v: number): void {
  const bk = backendOf(t);
  const host = bk.hostView?.(t);
  if (host) {
    host.data[host.off] = v;
    return;
  }
  const s = bk.upload(Float32Array.of(v), [1]);
  bk.copy(t, s);
  s.dispose();
}
