import { fail } from '../errors.js';
import type { RecordedWork } from '../backend/contract/decode.js';
import type { LanguageModel, LmConfig } from '../models/lm.js';
import type { ModelState } from '../models/state.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkSamplingParams, type SamplingParams } from '../backend/sampling.js';

/**
 * Generation with the token ids kept where the model runs (the GPU): each token costs one
 * recurrent step, one sampling kernel and a read-back of b ids, and nothing else crosses to the host.
 *
 *   token t:  [model.step(ids) ->] logits -> backend.sample -> ids (GPU, read by the next step)
 *                                                           -> copy of ids -> host (b ints)
 * Pipelined: up to `lookahead` tokens are recorded and submitted before the host waits for the oldest
 * one's ids, so the GPU never idles while the host maps a buffer. Where the backend can record
 * (`Backend.record`), the step + sampling kernels are recorded once and replayed for every later
 * token with no host work but the submit (the sampling step counter lives on the GPU too). A state with a
 * KV cache (hybrids) keeps its positions on the device for the loop (ModelState.holdPositionsOnDevice), so
 * that its step does not depend on the position either; the step that grows a cache (its capacity
 * doubles at 16, 32, 64, ... tokens) runs unrecorded and the next one is recorded anew. The price: when the loop stops
 * early (every row reached EOS, or the caller breaks out after a stop string), the state has consumed
 * up to `lookahead` tokens beyond the last one yielded (`state.position` counts them).
 */
export interface DeviceLoopOptions {
  /** Tokens to generate per row (the loop yields at most this many arrays). */
  maxNewTokens: number;
  sampling: SamplingParams;
  /** Ids that end a row; the loop stops once every row has produced one. */
  eos?: Iterable<number>;
  /** Ids never chosen (e.g. vocabulary padding). */
  suppress?: readonly number[];
  /** The ids already in each row (the prompts), for the repetition penalty. */
  prompts?: readonly (readonly number[])[];
  /** Tokens in flight ahead of the one being read back (default 2; 0 = no pipelining). */
  lookahead?: number;
  /** Step number of the first token for the random draws (default 0, as in `generateTokens`). */
  firstStep?: number;
}

/**
 * Yields the sampled ids of every row (an Int32Array of b) for each new token, starting from
 * `logits` (b, V): the logits of each row's last prompt position (e.g. `forward(ids, {state,
 * lastOnly: true})`). `state` is advanced in place. Rows that finished keep being sampled (their ids
 * are yielded too) until all are done; the caller drops what follows a row's end.
 */
export async function* deviceTokens(
  model: LanguageModel<LmConfig>,
  state: ModelState,
  logits: Tensor,
  o: DeviceLoopOptions,
): AsyncGenerator<Int32Array> {
  const bk = model.backend;
  if (!bk.sample) fail('UNSUPPORTED', `the ${bk.name} backend cannot sample where the logits are; use generateTokens`);
  const b = state.batch,
    V = model.vocabSize;
  if (logits.rank !== 2 || logits.rows !== b || logits.cols !== V)
    fail('SHAPE_MISMATCH', `deviceTokens: logits must be (${b}, ${V}), got (${logits.shape.join(', ')})`);
  const max = o.maxNewTokens;
  if (!Number.isInteger(max) || max < 0) fail('BAD_ARGUMENT', `max new tokens must be an integer >= 0, got ${max}`);
  checkSamplingParams(o.sampling);
  const lookahead = o.lookahead ?? 2;
  if (!Number.isInteger(lookahead) || lookahead < 0)
    fail('BAD_ARGUMENT', `lookahead must be an integer >= 0, got ${lookahead}`);
  const eos = new Set(o.eos ?? []);
  const first = o.firstStep ?? 0;

  const ids = bk.zeros([b], 'i32');
  let seen: Tensor | null = null;
  if (o.sampling.repetitionPenalty !== 1) {
    const mask = new Int32Array(b * V);
    o.prompts?.forEach((p, r) => {
      for (const id of p) if (id >= 0 && id < V) mask[r * V + id] = 1;
    });
    seen = bk.upload(mask, [b, V], 'i32');
  }
  let suppress: Tensor | null = null;
  if (o.suppress?.length) {
    const mask = new Int32Array(V);
    for (const id of o.suppress) if (id >= 0 && id < V) mask[id] = 1;
    suppress = bk.upload(mask, [V], 'i32');
  }
  // [step, 0]: the sampler reads the step from here and advances it (see SampleArgs.stepCounter)
  const counter = bk.upload(Int32Array.from([first, 0]), [2], 'i32');
  const sampleFrom = (lg: Tensor): void =>
    bk.sample!({ out: ids, logits: lg, params: o.sampling, step: 0, stepCounter: counter, seen, suppress });
  const stepAndSample = (): void => sampleFrom(model.step(ids, state));
  // A growing state (KV caches) records only with its positions on the device, where the backend's
  // attention step reads them (kvAppend); its recording is valid while the caches keep their buffers.
  const growing = state.growsWithContext;
  const records = !!bk.record && (!growing || !!bk.kvAppend);
  if (records && growing) state.holdPositionsOnDevice();
  let recorded: RecordedWork | undefined;
  // the caches' capacity: a step below it binds the buffers the recording binds (the state is the loop's
  // alone while it runs; only a step that grows a cache replaces them)
  let capacity = 0; // (set where a step is recorded)
  const pending: Promise<Int32Array>[] = [];
  const done = new Array<boolean>(b).fill(false);
  let queued = 0;
  const enqueue = (): void => {
    if (queued === 0) sampleFrom(logits);
    else if (recorded && state.mostPosition < capacity) {
      recorded.replay();
      state.count(1); // what model.step does on the host (the device's positions advance in the recording)
    } else {
      recorded?.dispose(); // (kept by the GPU's queue until the work that used it is done)
      recorded = undefined;
      capacity = state.capacity;
      // a step that grows a KV cache (it copies the old cache into the new) is never recorded: the next one is
      if (records && state.mostPosition < capacity) recorded = bk.record!(stepAndSample);
      else stepAndSample();
    }
    // `read` records the copy and submits now; only the mapping is awaited later.
    const p = bk.read(ids) as Promise<Int32Array>;
    p.catch(() => {}); // awaited below, or dropped when the loop ends early
    pending.push(p);
    queued++;
  };
  try {
    while (true) {
      while (queued < max && pending.length <= lookahead) enqueue();
      const next = pending.shift();
      if (!next) break;
      const got = await next;
      yield got;
      got.forEach((id, r) => {
        if (eos.has(id)) done[r] = true;
      });
      if (done.every(Boolean)) break;
    }
  } finally {
    await Promise.allSettled(pending);
    recorded?.dispose();
    if (records && growing) state.releasePositionsOnDevice();
    counter.dispose();
    ids.dispose();
    seen?.dispose();
    suppress?.dispose();
  }
}
