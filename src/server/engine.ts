import { fail, MambaError } from '../errors.js';
import type { FinishReason } from '../generate/generate.js';
import { copyRow } from '../generate/generate.js';
import type { LanguageModel, LmConfig } from '../models/lm.js';
import { ModelState } from '../models/state.js';
import { copyStateRow, reserveContext } from '../models/state-rows.js';
import { Tensor } from '../tensor/tensor.js';
import type { CacheHit, PromptCache } from './prompt-cache.js';
import { canShare, pickCompanions, type PrefillCandidate } from './prefill-rows.js';
import { TokenSampler, tokenLogprobs, type SequenceSampling, type TokenLogprob } from './token-sampler.js';

/**
 * Continuous batching over the model's recurrent step. One loop, one tick at a time:
 *   1. admit waiting requests while batch rows are free;
 *   2. prefill: one chunk (at most `prefillChunk` tokens) of one prefilling request (round robin), so a
 *      long prompt delays the others' next token by at most one chunk's forward pass; other requests
 *      whose next chunk has the same length share that forward as rows of one batch, while the rows'
 *      tokens stay within `prefillChunk` (prefill-rows.ts: which rows, and why their numbers are those
 *      of a prefill alone);
 *   3. decode: one batched `LanguageModel.step` for every decoding sequence, then each row samples.
 * A sequence joins the batch at the next tick after its prompt, and leaves it as soon as it ends (EOS,
 * max tokens, stop string, client gone): the batch state is rebuilt from rows (states of an SSM's rows
 * never interact, so a row's numbers do not depend on its neighbours) only when membership changes.
 * Prompts start from the prompt cache's longest snapshot and leave snapshots at the marks they pass.
 *
 * Hybrid models (Granite 4.0-H, Falcon-H1, Bamba, Nemotron-H, Jamba, Zamba2: attention layers beside
 * the Mamba layers) keep a KV cache in their state, and their sequences have seen different numbers of
 * tokens. They batch the same way: the batch's KV caches have one capacity (at least the longest row's
 * length, grown by doubling before a step that needs it), each row keeps its own filled length (the
 * cache's per-row `length` counter, and `ModelState.rowPositions` on the host), and the batched step
 * writes, rotates and attends each row at its own position (the attention kernel's per-row key counts):
 * a row's numbers do not depend on its neighbours either. A row joins by copying its filled positions in
 * and leaves by moving the last row into its place (the whole capacity of that row). Snapshots for the
 * prompt cache are a row's filled positions (a state of its own; its bytes, spare capacity included,
 * count in the LRU).
 */
export interface EngineRequest {
  prompt: readonly number[];
  /** Prefix lengths after which to keep a snapshot (chat message boundaries); the prompt end always is. */
  snapshotAt?: readonly number[];
  /** Choices (sequences sharing the prompt). */
  n: number;
  maxTokens: number;
  sampling: SequenceSampling;
  eos: readonly number[];
  suppress: readonly number[];
  signal?: AbortSignal;
  /** Report each new token's log-probability and this many alternatives (absent: none). */
  logprobs?: number | undefined;
  /** A new token of choice `choice`; `finish` on its last event (token -1 when it ends without one). */
  onToken(choice: number, token: number, finish?: FinishReason, logprob?: TokenLogprob): void;
  /** Whether choice `choice` ended by itself (a stop string in its text). */
  isStopped?(choice: number): boolean;
  /**
   * The token ids the next turn's prompt will start with once choice `choice` has ended (a chat's
   * history with this reply and its end-of-turn tokens, as the next request renders and tokenizes it);
   * null: none. The engine then keeps a snapshot after exactly these ids (see `followUp`).
   */
  followUp?: ((choice: number) => readonly number[] | null) | undefined;
}

export interface EngineResult {
  promptTokens: number;
  /** Prompt tokens taken from the cache (not computed). */
  cachedTokens: number;
}

/** What the metrics see. */
export interface EngineObserver {
  prefilled?(tokens: number): void;
  /** Tokens fed after a reply to keep the snapshot the next turn starts from (not a request's prefill). */
  followUpFed?(tokens: number): void;
  cacheLookup?(hitTokens: number, tier: string | null): void;
  firstToken?(seconds: number): void;
  decodeStep?(rows: number, seconds: number): void;
  queue?(waiting: number, running: number): void;
}

export interface EngineOptions {
  /** Sequences decoding at once (batch rows). */
  maxRunning: number;
  /** Requests waiting for a row; more are refused (429). */
  maxQueued: number;
  /** Prompt tokens per prefill forward pass. */
  prefillChunk: number;
  /** Snapshot every this many prompt tokens (0: only at the prompt end and message boundaries). */
  snapshotEvery: number;
  /**
   * Bytes of weights the backend may keep in its product's own layout (Backend.packWeights: the CPU
   * gemm's panels, packed once instead of on every batched step); 0: none. Default 256 MiB.
   */
  packWeightsBytes?: number | undefined;
  cache?: PromptCache | undefined;
  observer?: EngineObserver | undefined;
}

interface Job {
  req: EngineRequest;
  done: (r: EngineResult) => void;
  failed: (e: unknown) => void;
  submitted: number;
  state: ModelState | null;
  fed: number;
  cached: number;
  marks: number[];
  left: number; // choices not finished
  /** The prompt cache's answer, asked at admission (a store's round trip must not hold up the batch). */
  lookup: { done: boolean; hit: CacheHit | null; error?: unknown } | null;
  /** A follow-up job (no choices, no caller): feeds a finished reply's end-of-turn tokens, see `followUp`. */
  followUp?: boolean;
  /** Set once a follow-up job has fed its tokens (or given up). */
  ended?: boolean;
  /** A follow-up job whose snapshot this request's prompt extends: it looks the cache up after that one. */
  after?: Job | null;
  /** Requests waiting for this follow-up job. */
  waiters?: Job[];
}

interface Seq {
  job: Job;
  choice: number;
  sampler: TokenSampler;
  /** Own state until it joins the batch. */
  state: ModelState | null;
  /** Tokens its state has consumed (its row's position in a hybrid's batch). */
  pos: number;
  last: number;
  generated: number;
  finished: boolean;
  /** How it ended (a sequence cut off by the client or an error leaves no snapshot). */
  why?: FinishReason;
  /** Its end was kept (snapshotEnd). */
  snapshotted?: boolean;
}

/** What a follow-up job asks of the engine: its prompt only. */
const FOLLOW_UP: EngineRequest = {
  prompt: [],
  n: 0,
  maxTokens: 1,
  sampling: {
    temperature: 0,
    topP: 1,
    topK: 0,
    minP: 0,
    repetitionPenalty: 1,
    presencePenalty: 0,
    frequencyPenalty: 0,
    seed: 0,
  },
  eos: [],
  suppress: [],
  onToken: () => {},
};

/** Whether `a` starts with all of `b`. */
function extends_(a: readonly number[], b: readonly number[]): boolean {
  if (a.length < b.length) return false;
  for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Engine {
  private readonly waiting: Job[] = [];
  private readonly prefilling: Job[] = [];
  private decoding: Seq[] = []; // rows of `batch`, in order
  private joining: Seq[] = [];
  private batch: ModelState | null = null;
  /**
   * The batch's storage: one state of maxRunning rows, allocated once; the batch of k sequences is a
   * view of its first k rows, so a sequence joins by one row copy and leaves by moving the last row
   * into its place (not by copying every row into a new state). Null until first needed, or when the
   * model's state tensors are not all batch-major (then each change rebuilds the batch).
   */
  private rowsOf: ModelState | null = null;
  private views = new Map<number, ModelState>();
  private viewsWork = true;
  private running = false;
  private closed = false;
  /** The state has tensors that grow with the context (a hybrid's KV caches; see the class comment). */
  private readonly growing: boolean;
  /** Sequences that ended with a reply this tick, whose follow-up jobs start at the end of the tick. */
  private followUps: Seq[] = [];
  private idle: (() => void)[] = [];

  constructor(
    readonly lm: LanguageModel<LmConfig>,
    readonly o: EngineOptions,
  ) {
    // a KV cache (the hybrids' attention layers): rows at their own positions, one capacity for all
    const probe = lm.initState(1);
    this.growing = probe.growsWithContext;
    probe.dispose();
    // the served weights do not change: the batched step's products may skip repacking them
    const pack = o.packWeightsBytes ?? 256 << 20;
    // (with the storage of parameters that are views: the hybrids' stacked q/k/v and gate/up are one product)
    const weights = [...lm.parameters().values(), lm.lmHead];
    if (pack > 0) lm.backend.packWeights?.([...weights, ...weights.flatMap((t) => (t.base ? [t.base] : []))], pack);
  }

  /** Requests waiting for a row. */
  get queued(): number {
    return this.waiting.length;
  }
  /** Sequences holding a row (prefilling choices count n each). */
  get rows(): number {
    return this.decoding.length + this.joining.length + this.prefilling.reduce((s, j) => s + j.req.n, 0);
  }

  /** Whether a request of n choices would be admitted now or queued (false: refuse it, 429). */
  canTake(requests = 1): boolean {
    const free = Math.max(0, this.o.maxRunning - this.rows); // admitted at the next tick
    return this.waiting.length + requests <= this.o.maxQueued + free;
  }

  /** Runs a request; resolves when every choice has ended. Throws OVERLOADED when the queue is full. */
  submit(req: EngineRequest): Promise<EngineResult> {
    // (no error code fits "busy" better: details tell the HTTP layer which status to answer)
    if (this.closed) fail('UNSUPPORTED', 'the server is shutting down', { shuttingDown: true });
    if (!this.canTake()) {
      fail('UNSUPPORTED', `the server is full: ${this.waiting.length} requests wait already`, { overloaded: true });
    }
    if (req.n > this.o.maxRunning) {
      fail('BAD_ARGUMENT', `n is ${req.n}, but at most ${this.o.maxRunning} sequences run at once`);
    }
    this.lm.checkIds(req.prompt);
    return new Promise<EngineResult>((done, failed) => {
      const submitted = performance.now();
      const job: Job = {
        req,
        done,
        failed,
        submitted,
        state: null,
        fed: 0,
        cached: 0,
        marks: [],
        left: req.n,
        lookup: null,
      };
      this.waiting.push(job);
      this.report();
      if (!this.running) void this.loop();
    });
  }

  /** Stops admitting; resolves when running requests have ended (or aborts them after graceMs). */
  async close(graceMs: number): Promise<void> {
    this.closed = true;
    if (!this.running) return;
    const idle = new Promise<void>((r) => this.idle.push(r));
    const t = setTimeout(() => {
      this.abortAll = true;
    }, graceMs);
    await idle;
    clearTimeout(t);
  }

  private abortAll = false;

  /** Frees the batch's storage (after close: nothing runs). */
  dispose(): void {
    if (this.running) return;
    this.lm.backend.unpackWeights?.();
    if (!this.rowsOf) this.batch?.dispose(); // a batch of its own (not batch-major states)
    this.rowsOf?.dispose();
    this.rowsOf = null;
    for (const s of this.prefillStates.values()) s.dispose();
    this.prefillStates.clear();
    this.views.clear();
    this.batch = null;
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.waiting.length || this.prefilling.length || this.decoding.length || this.joining.length) {
        this.admit();
        const prefilled = await this.prefillTick();
        const decoded = await this.decodeTick();
        this.startFollowUps();
        this.report();
        // let requests in and responses out; with nothing to do but wait for the cache, wait a little
        if (prefilled || decoded) await new Promise<void>((r) => setImmediate(r));
        else await new Promise<void>((r) => setTimeout(r, 1));
      }
    } catch (e) {
      // a failure of the shared step: every request in flight gets it (none is left hanging)
      const jobs = new Set([...this.prefilling, ...[...this.decoding, ...this.joining].map((s) => s.job)]);
      for (const j of jobs) j.failed(e);
      for (const s of [...this.decoding, ...this.joining]) s.state?.dispose(); // (joining rows)
      this.prefilling.length = 0;
      this.decoding = [];
      this.joining = [];
      if (!this.rowsOf) this.batch?.dispose(); // (a view of rowsOf is not disposed: rowsOf is reused)
      this.batch = null;
    } finally {
      this.running = false;
      this.idle.splice(0).forEach((r) => r());
      if (this.waiting.length && !this.closed) void this.loop();
    }
  }

  private report(): void {
    this.o.observer?.queue?.(this.waiting.length, this.rows);
  }

  private admit(): void {
    while (this.waiting.length && this.rows + this.waiting[0].req.n <= this.o.maxRunning) {
      const j = this.waiting.shift()!;
      if (j.req.signal?.aborted || this.abortAll) {
        this.endJob(j, 'aborted');
        continue;
      }
      // a follow-up job still feeding the end of this conversation's last reply: look up after it
      const before = this.prefilling.find((f) => f.followUp && !f.ended && extends_(j.req.prompt, f.req.prompt));
      if (before) {
        j.after = before;
        (before.waiters ??= []).push(j);
      } else this.startLookup(j);
      this.prefilling.push(j);
    }
  }

  /** Asks the prompt cache for the job's longest cached prefix (the answer comes in `j.lookup`). */
  private startLookup(j: Job): void {
    if (!this.o.cache) return;
    const l: NonNullable<Job['lookup']> = { done: false, hit: null };
    j.lookup = l;
    const answered = (hit: CacheHit | null, error?: unknown): void => {
      Object.assign(l, { done: true, hit }, error === undefined ? {} : { error });
    };
    this.o.cache.lookup(j.req.prompt).then(
      (h) => answered(h),
      (e: unknown) => answered(null, e),
    );
  }

  /**
   * Follow-up jobs: a chat reply's snapshot (the row's state after the prompt and the reply's tokens)
   * is keyed by the ids generated, but the next turn's prompt holds the reply re-rendered by the chat
   * template and tokenized again, with the template's end-of-turn text after it (and re-tokenizing may
   * give other ids than those generated). So when a reply ends, the request says which ids the next
   * prompt will start with, and a job with no choices feeds them from the longest cached prefix (the
   * reply's own snapshot when the ids agree: a few tokens) and keeps the snapshot after them. A request
   * arriving meanwhile whose prompt extends those ids waits for it instead of missing it.
   */
  private startFollowUps(): void {
    for (const s of this.followUps.splice(0)) {
      if (!this.o.cache || this.closed) return;
      let ids: readonly number[] | null = null;
      try {
        ids = s.job.req.followUp!(s.choice);
      } catch {
        ids = null; // (a follow-up is an optimisation: a failure to render one costs only a cache miss)
      }
      if (!ids || ids.length < 2) continue;
      const req: EngineRequest = { ...FOLLOW_UP, prompt: ids };
      const noop = (): void => {};
      const job: Job = {
        req,
        done: noop,
        failed: noop,
        submitted: performance.now(),
        state: null,
        fed: 0,
        cached: 0,
        marks: [],
        left: 0,
        lookup: null,
        followUp: true,
      };
      this.startLookup(job);
      this.prefilling.unshift(job); // before requests: the next turn is likely on its way
    }
  }

  /** A follow-up job has ended: the requests waiting for it look the cache up now. */
  private endFollowUp(j: Job): void {
    j.ended = true;
    for (const w of j.waiters ?? []) {
      w.after = null;
      this.startLookup(w);
    }
    j.waiters = [];
  }

  /**
   * One prefill forward: the next chunk of the first prefilling request whose cache lookup has answered
   * (round robin: then it goes to the back of the line), and in the same forward the next chunks of
   * other requests that fit beside it (`companions`, see prefill-rows.ts for which ones and why).
   */
  private async prefillTick(): Promise<boolean> {
    const i = this.prefilling.findIndex((j) => this.isReady(j));
    if (i < 0) return false;
    const head = this.prefilling.splice(i, 1)[0];
    if (!this.prepare(head)) return true;
    const rows = [head];
    // hybrids stay on the one-request path: rows of one forward share one position (LanguageModel.forward)
    // and their KV caches would have to be gathered at their filled lengths (not done)
    const L = this.chunkEnd(head) - head.fed;
    if (!this.growing && canShare(L, this.o.prefillChunk)) {
      const candidates: PrefillCandidate<Job>[] = [];
      for (const j of [...this.prefilling]) {
        if (!this.isReady(j)) continue;
        if (!this.prepare(j)) {
          this.prefilling.splice(this.prefilling.indexOf(j), 1); // (aborted, failed, or all cached)
          continue;
        }
        const end = this.chunkEnd(j);
        candidates.push({ job: j, length: end - j.fed, ends: end === j.req.prompt.length && !j.followUp });
      }
      const ends = head.fed + L === head.req.prompt.length && !head.followUp;
      for (const j of pickCompanions({ length: L, ends }, this.o.prefillChunk, candidates)) {
        this.prefilling.splice(this.prefilling.indexOf(j), 1);
        rows.push(j);
      }
    }
    try {
      await this.prefillRows(rows);
    } catch (e) {
      // a failure of this forward (a model error on these tokens) is these requests' own
      for (const j of rows) this.failPrefill(j, e);
    }
    return true;
  }

  /** Ends a prefilling job with its own error: its state is dropped and its follow-up job ended. */
  private failPrefill(j: Job, e: unknown): void {
    j.state?.dispose();
    j.state = null;
    if (j.followUp) this.endFollowUp(j);
    j.failed(e);
  }

  /** Whether a prefilling job can take a step (its cache lookup answered, no follow-up job ahead of it). */
  private isReady(j: Job): boolean {
    return !j.after && (!j.lookup || j.lookup.done);
  }

  /**
   * Readies a job for its next chunk: its state (the cache's snapshot or a fresh one) and snapshot marks
   * on its first chunk. False when the job needs no forward (it was aborted, or its whole prompt was
   * cached with its logits, or its cached snapshot failed): it has left the prefill line then.
   */
  private prepare(j: Job): boolean {
    try {
      return this.prepareOrThrow(j);
    } catch (e) {
      this.failPrefill(j, e); // this request's failure (a bad snapshot) is its own
      return false;
    }
  }

  private prepareOrThrow(j: Job): boolean {
    const p = j.req.prompt;
    if (j.req.signal?.aborted || this.abortAll) {
      j.state?.dispose();
      j.lookup?.hit?.state.dispose();
      j.lookup = null;
      if (j.followUp) this.endFollowUp(j);
      this.endJob(j, 'aborted');
      return false;
    }
    if (j.state) return true;
    if (j.lookup?.error) throw j.lookup.error;
    const hit = j.lookup?.hit ?? null;
    j.lookup = null;
    if (!j.followUp) this.o.observer?.cacheLookup?.(hit?.length ?? 0, hit?.tier ?? null);
    j.state = hit ? hit.state : this.lm.initState(1);
    j.fed = j.cached = hit?.length ?? 0;
    if (hit?.logits) {
      this.startDecoding(j, hit.logits); // this very prompt was seen before
      return false;
    }
    const every = j.followUp ? 0 : this.o.snapshotEvery;
    const marks = new Set(this.o.cache ? [...(j.req.snapshotAt ?? []), p.length] : []);
    if (this.o.cache && every > 0) for (let m = every; m < p.length; m += every) marks.add(m);
    j.marks = [...marks].filter((m) => m > j.fed && m <= p.length).sort((a, b) => a - b);
    return true;
  }

  /** Where the job's next chunk ends when it is prefilled alone: the chunk size, its next mark, its prompt's end. */
  private chunkEnd(j: Job): number {
    const p = j.req.prompt;
    const mark = j.marks.find((m) => m > j.fed) ?? p.length;
    return Math.min(p.length, j.fed + this.o.prefillChunk, mark);
  }

  /**
   * One forward over the next chunk of each job (chunks of one length, see pickCompanions): one job
   * continues its own state; several are gathered into a state of as many rows (each row a copy of its
   * job's state: rows of an SSM's state never interact), and each row's state is copied back after.
   */
  private async prefillRows(rows: Job[]): Promise<void> {
    const c = rows.length;
    const from = rows.map((j) => j.fed);
    const end = rows.map((j) => this.chunkEnd(j));
    const L = end[0] - from[0];
    const flat = new Int32Array(c * L);
    rows.forEach((j, r) => flat.set(j.req.prompt.slice(from[r], end[r]), r * L));
    const ids = this.lm.backend.upload(flat, [c, L], 'i32');
    let logits: Tensor;
    let batch: ModelState | null = null;
    try {
      if (c === 1)
        logits = this.lm.forward(ids, { state: rows[0].state!, lastOnly: true }); // (1, V)
      else {
        batch = this.prefillState(c);
        rows.forEach((j, r) => copyStateRow(batch!, r, j.state!, 0, 0));
        logits = this.lm.forward(ids, { state: batch, lastOnly: true }); // (c, V)
        rows.forEach((j, r) => {
          copyStateRow(j.state!, 0, batch!, r, 0);
          j.state!.position += L;
        });
      }
    } finally {
      ids.dispose();
    }
    // every row's last logits once (one read for the rows whose prompt ends here)
    const V = this.lm.vocabSize;
    let all: Float32Array | null = null;
    try {
      if (end.some((e, r) => e === rows[r].req.prompt.length && !rows[r].followUp)) all = await logits.readFloat();
    } finally {
      logits.dispose();
    }
    rows.forEach((j, r) => {
      try {
        this.afterChunk(j, end[r], all?.slice(r * V, (r + 1) * V) ?? null);
      } catch (e) {
        this.failPrefill(j, e); // (a snapshot that failed to keep) this request's own: the other rows go on
      }
    });
  }

  /**
   * The state of `c` rows a batched prefill forward runs on: allocated once per row count and reused
   * (every row is overwritten by its job's state before the forward).
   */
  private prefillState(c: number): ModelState {
    let s = this.prefillStates.get(c);
    if (!s) {
      s = this.lm.initState(c);
      this.prefillStates.set(c, s);
    }
    s.position = 0; // (an SSM's mixers do not read it; each job's own state counts its tokens)
    return s;
  }

  private readonly prefillStates = new Map<number, ModelState>();

  /** The job's state has consumed its prompt up to `end`: a snapshot at a mark, the next chunk, or decoding. */
  private afterChunk(j: Job, end: number, last: Float32Array | null): void {
    const p = j.req.prompt;
    if (j.followUp) this.o.observer?.followUpFed?.(end - j.fed);
    else this.o.observer?.prefilled?.(end - j.fed);
    j.fed = end;
    if (end < p.length) {
      if (this.o.cache && j.marks.includes(end)) this.o.cache.put(p, end, j.state!);
      this.prefilling.push(j);
      return;
    }
    if (j.followUp) {
      // (the next turn's prompt goes on past these ids: their logits are not needed)
      this.o.cache?.put(p, end, j.state!);
      j.state!.dispose();
      j.state = null;
      this.endFollowUp(j);
      return;
    }
    this.startDecoding(j, last!, (state) => this.o.cache?.put(p, end, state, last!));
  }

  /**
   * The prompt is in: each choice samples its first token from the last logits and waits to join.
   * `keep` takes the prompt's end snapshot once the first tokens are out (a copy not on their path).
   */
  private startDecoding(j: Job, last: Float32Array, keep?: (state: ModelState) => void): void {
    const p = j.req.prompt;
    const state = j.state!;
    if (j.followUp) {
      state.dispose(); // (these very ids were cached already)
      j.state = null;
      this.endFollowUp(j);
      return;
    }
    this.o.observer?.firstToken?.((performance.now() - j.submitted) / 1000);
    const seqs: Seq[] = [];
    for (let c = 0; c < j.req.n; c++) {
      const seq: Seq = {
        job: j,
        choice: c,
        finished: false,
        generated: 0,
        last: -1,
        state: c === j.req.n - 1 ? state : state.clone(),
        pos: state.position,
        sampler: new TokenSampler(j.req.sampling, p, c, j.req.suppress),
      };
      this.sampleInto(seq, last, 0);
      seqs.push(seq);
    }
    keep?.(state); // (the last choice's state is `state` itself, unchanged until it joins the batch)
    for (const seq of seqs) {
      if (seq.finished) {
        if (seq.why !== 'aborted' && j.req.followUp) this.followUps.push(seq); // (the prompt's end is cached)
        seq.state!.dispose();
      } else this.joining.push(seq);
    }
    j.state = null;
  }

  /** One batched step for every decoding sequence. */
  private async decodeTick(): Promise<boolean> {
    // (plain loops, and arrays only when membership changes: this runs once per generated token of the batch)
    let ended = false;
    for (const rows of [this.decoding, this.joining]) {
      for (const s of rows) {
        if (!s.finished && (s.job.req.signal?.aborted || this.abortAll)) this.finish(s, -1, 'aborted');
        ended ||= s.finished;
      }
    }
    if (ended || this.joining.length) {
      const keep = this.decoding.filter((s) => !s.finished);
      const join = this.joining.filter((s) => !s.finished);
      for (const s of this.joining) if (s.finished) s.state?.dispose();
      if (keep.length !== this.decoding.length || join.length) this.regroup(keep, join);
      this.joining = [];
    }
    const b = this.decoding.length;
    if (!b || !this.batch) return false;
    const t0 = performance.now();
    const ids = this.stepInput;
    ids.length = b;
    for (let r = 0; r < b; r++) ids[r] = this.decoding[r].last;
    if (this.growing) this.placeRows();
    const logits = this.lm.stepIds(ids, this.batch); // (b, V)
    for (let r = 0; r < b; r++) this.decoding[r].pos++;
    const V = this.lm.vocabSize;
    const cpu = logits.backend.name === 'cpu' && logits.dtype === 'f32';
    const data = cpu ? (logits.storage as Float32Array) : await logits.readFloat();
    const off = cpu ? logits.offset : 0,
      ld = cpu ? logits.ld : V;
    for (let r = 0; r < b; r++) this.sampleInto(this.decoding[r], data, off + r * ld);
    this.o.observer?.decodeStep?.(b, (performance.now() - t0) / 1000);
    // the rows that ended hold their final states until the next regroup: keep those now, before the
    // responses end (a follow-up request may come at once)
    if (this.o.cache) this.decoding.forEach((s, r) => s.finished && this.snapshotEnd(s, this.batch!, r));
    return true;
  }

  /** The ids fed to the batched step (reused: one array for every step). */
  private readonly stepInput: number[] = [];

  /**
   * A hybrid's batch before its step: each row's position (ModelState.rowPositions: the model advances
   * them), and KV caches that hold one more token of the longest row (grown by doubling: rare).
   */
  private placeRows(): void {
    const rows = this.decoding;
    let most = 0;
    for (const s of rows) most = Math.max(most, s.pos);
    if (this.rowsOf) this.reserveRows(most + 1, rows.length);
    else reserveContext(this.batch!, most + 1);
    this.batch!.rowPositions = rows.map((s) => s.pos);
  }

  /** Grows the KV caches of `rowsOf` (the first `rows` rows kept) to hold `need` positions; views are remade. */
  private reserveRows(need: number, rows: number): void {
    if (!reserveContext(this.rowsOf!, need, rows)) return;
    this.views.clear();
    this.batch = rows ? this.view(rows) : null;
  }

  /** Takes the finished sequences out of the batch and the joining ones in. */
  private regroup(keep: Seq[], join: Seq[]): void {
    if (!this.rowsOf && this.viewsWork) {
      const all = this.lm.initState(this.o.maxRunning);
      const batchMajor = all.layers.every((l) => Object.values(l).every((t) => t.shape[0] === this.o.maxRunning));
      if (batchMajor) this.rowsOf = all;
      else {
        all.dispose();
        this.viewsWork = false;
      }
    }
    if (!this.rowsOf) {
      this.rebuild(keep, join);
      return;
    }
    const rows = this.decoding;
    for (let r = 0; r < rows.length;) {
      if (!rows[r].finished) {
        r++;
        continue;
      }
      const last = rows.length - 1;
      if (r !== last) copyRow(this.view(rows.length), r, this.view(rows.length), last);
      rows[r] = rows[last];
      rows.pop();
    }
    for (const s of join) {
      if (this.growing) this.reserveRows(s.pos + 1, rows.length);
      copyStateRow(this.view(rows.length + 1), rows.length, s.state!, 0, s.pos);
      s.state!.dispose();
      s.state = null;
      rows.push(s);
    }
    this.batch = rows.length ? this.view(rows.length) : null;
  }

  /** The first k rows of `rowsOf` as a state of batch k (views: nothing copied). */
  private view(k: number): ModelState {
    let v = this.views.get(k);
    if (!v) {
      const all = this.rowsOf!;
      const layers = all.layers.map((l) =>
        Object.fromEntries(
          Object.entries(l).map(([name, t]) => [
            name,
            new Tensor(t.backend, t.storage, [k, ...t.shape.slice(1)], t.dtype, t.offset, t.ld, t),
          ]),
        ),
      );
      v = new ModelState(all.backend, layers, k, 0, all.signature, all.shapes);
      this.views.set(k, v);
    }
    return v;
  }

  /** The batch state of the sequences kept (rows of the old batch) followed by those joining. */
  private rebuild(keep: Seq[], join: Seq[]): void {
    const old = this.batch,
      oldRows = this.decoding;
    const all = [...keep, ...join];
    this.batch = all.length ? this.lm.initState(all.length) : null;
    if (this.growing && this.batch) reserveContext(this.batch, Math.max(...all.map((s) => s.pos + 1)));
    keep.forEach((s, r) => copyStateRow(this.batch!, r, old!, oldRows.indexOf(s), s.pos));
    join.forEach((s, i) => {
      copyStateRow(this.batch!, keep.length + i, s.state!, 0, s.pos);
      s.state!.dispose();
      s.state = null;
    });
    old?.dispose();
    this.decoding = all;
  }

  /**
   * A finished sequence's row holds the state after its prompt and every new token but the last (the
   * one sampled from the final step): kept, a follow-up that quotes the reply (the next chat turn)
   * feeds only what comes after it.
   */
  private snapshotEnd(s: Seq, batch: ModelState, row: number): void {
    if (s.why === 'aborted' || s.snapshotted) return;
    s.snapshotted = true;
    if (s.job.req.followUp) this.followUps.push(s);
    if (s.generated < 2) return;
    const tokens = s.sampler.seen.slice(0, -1);
    const one = this.lm.initState(1);
    reserveContext(one, s.pos); // (a hybrid's KV caches: the row's filled positions)
    copyStateRow(one, 0, batch, row, s.pos);
    one.position = s.pos;
    this.o.cache!.put(tokens, tokens.length, one, undefined, true);
  }

  private sampleInto(s: Seq, logits: ArrayLike<number>, off: number): void {
    const tok = s.sampler.next(logits, off, this.lm.vocabSize);
    if (tok < 0) {
      const msg = `the model produced non-finite logits at token ${s.generated + 1} of choice ${s.choice}`;
      this.finish(s, -1, 'aborted', new MambaError('NON_FINITE', msg));
      return;
    }
    s.generated++;
    s.last = tok;
    const req = s.job.req;
    const V = this.lm.vocabSize;
    const lp = req.logprobs === undefined ? undefined : tokenLogprobs(logits, off, V, tok, req.logprobs);
    const finish: FinishReason | undefined = req.eos.includes(tok)
      ? 'eos'
      : s.generated >= req.maxTokens
        ? 'length'
        : undefined;
    if (finish) {
      this.finish(s, tok, finish, undefined, lp);
      return;
    }
    req.onToken(s.choice, tok, undefined, lp);
    if (req.isStopped?.(s.choice)) this.finish(s, -1, 'stop');
  }

  private finish(s: Seq, tok: number, why: FinishReason, err?: Error, lp?: TokenLogprob): void {
    s.finished = true;
    s.why = err ? 'aborted' : why;
    const j = s.job;
    try {
      j.req.onToken(s.choice, tok, why, lp);
    } catch (e) {
      err ??= e as Error;
    }
    if (err) {
      j.left = -1;
      j.failed(err);
      return;
    }
    if (--j.left === 0) j.done({ promptTokens: j.req.prompt.length, cachedTokens: j.cached });
  }

  private endJob(j: Job, why: FinishReason): void {
    for (let c = 0; c < j.req.n; c++) j.req.onToken(c, -1, why);
    j.done({ promptTokens: j.req.prompt.length, cachedTokens: j.cached });
  }
}
