import { fail, fmtShape } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import type { Mixer } from '../mixers/mixer.js';
import * as F from '../ops/ops.js';
import { scope } from '../tensor/scope.js';
import { gradNodeOf, Tensor } from '../tensor/tensor.js';
import type { ModelConfig } from './config.js';
import { ModelState } from './state.js';

/**
 * One residual block: residual <- residual + scale · mixer(rmsnorm(residual)). A feed-forward is a
 * stateless mixer, so a hybrid decoder layer "mixer, then MLP" is two blocks.
 */
export interface Block {
  norm: Tensor; // (d)
  mixer: Mixer;
  /** Multiplies the mixer's output before the residual add (Granite's residual_multiplier); default 1. */
  scale?: number;
  /** Checkpoint names: the norm's weight and the prefix of the mixer's parameters (default: Mamba's). */
  names?: { norm: string; mixer: string };
}

/** Model-level options of the hybrids (multipliers and checkpoint names); all default to Mamba's. */
export interface LmOptions {
  /** h0 = embed(ids) · embeddingScale (Granite's embedding_multiplier). */
  embeddingScale?: number;
  /** logits = lm_head(h) / logitsDivisor (Granite's logits_scaling). */
  logitsDivisor?: number;
  names?: { embeddings: string; normF: string; lmHead: string };
}

/** Mamba's checkpoint names (transformers). */
const NAMES = { embeddings: 'backbone.embeddings.weight', normF: 'backbone.norm_f.weight', lmHead: 'lm_head.weight' };

/** Buffers of the recurrent step for one batch size, made once. */
/** The buffers of a recurrent step at one batch size, made once and kept. */
export interface StepWorkspace {
  ids: Tensor; // (b) i32
  residual: Tensor; // (b, d) f32 residual stream
  normed: Tensor; // (b, d)
  hidden: Tensor; // (b, d) mixer output
  logits: Tensor; // (b, V)
}

/** What the model itself reads from its config (task models built from scratch bring their own config type). */
export interface LmConfig {
  readonly arch: string;
  readonly normEps: number;
  readonly eosTokenId?: number | undefined;
}

/**
 * A language model over any mixer: embeddings -> n blocks -> final add + RMSNorm (norm_f) -> lm_head
 * (REFERENCE.md §1). The residual stream is f32 (residual_in_fp32 holds by construction).
 *
 *   forward(ids (b, l))  parallel over the sequence -> logits (b, l, V), or (b, V) for the last position
 *   step(ids (b), state) one token per sequence     -> logits (b, V), state advanced in place
 */
export class LanguageModel<C extends LmConfig = ModelConfig> {
  private readonly workspaces = new Map<number, StepWorkspace>();
  /** Constant rows (a value repeated n times) for the multipliers, made once. */
  private readonly constants = new Map<string, Tensor>();

  constructor(
    readonly config: C,
    readonly backend: Backend,
    readonly embeddings: Tensor, // (V, d)
    readonly blocks: Block[],
    readonly normF: Tensor, // (d)
    readonly lmHead: Tensor, // (V, d); the same tensor as embeddings when tied
    readonly options: LmOptions = {},
  ) {}

  get vocabSize(): number {
    return this.embeddings.rows;
  }
  get dModel(): number {
    return this.embeddings.cols;
  }
  get eps(): number {
    return this.config.normEps;
  }

  /** Identifies which states fit this model. */
  get signature(): string {
    const first = this.blocks[0]?.mixer.kind;
    if (this.blocks.some((b) => b.mixer.kind !== first)) {
      // a hybrid: every block's kind and state shapes, in order
      const parts = this.blocks.map((b) => {
        const sh = Object.entries(b.mixer.stateShapes()).map(([k, s]) => `${k}${fmtShape(s)}`);
        return `${b.mixer.kind}[${sh.join(',')}]`;
      });
      return `${this.config.arch}:${parts.join(';')}`;
    }
    const shapes = this.blocks[0]
      ? Object.entries(this.blocks[0].mixer.stateShapes())
          .map(([k, s]) => `${k}${fmtShape(s)}`)
          .join(',')
      : '';
    return `${this.config.arch}:${this.blocks.length}x[${shapes}]`;
  }

  /** Checks that every id is in [0, V); the error names the first bad one and its position. */
  checkIds(ids: ArrayLike<number>): void {
    const V = this.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        fail(
          'TOKEN_OUT_OF_RANGE',
          `token id ${id} at position ${i} is out of range: the model's vocabulary has ${V} ids (0..${V - 1})`,
          { id, position: i, vocabSize: V },
        );
      }
    }
  }

  /**
   * The parallel form. ids (b, l) i32 -> logits (b, l, V), or (b, V) for the last position only
   * (`lastOnly`, what prefill before generation needs; skips l - 1 rows of the large lm_head product).
   * With a state, continues from it and leaves the state after the sequence in it.
   */
  forward(ids: Tensor, opts: { state?: ModelState; lastOnly?: boolean } = {}): Tensor {
    if (ids.rank !== 2 || ids.dtype !== 'i32')
      fail('SHAPE_MISMATCH', `forward: ids must be (b, l) i32, got ${fmtShape(ids.shape)} ${ids.dtype}`);
    const [b, l] = ids.shape as [number, number];
    if (l === 0) fail('EMPTY_INPUT', 'forward: the sequence is empty (length 0)');
    const st = opts.state;
    if (st) {
      if (st.batch !== b) fail('STATE_MISMATCH', `forward: state has batch ${st.batch}, ids have batch ${b}`);
      if (st.signature !== this.signature)
        fail('STATE_MISMATCH', `forward: state belongs to ${st.signature}, this model is ${this.signature}`);
      if (st.rowPositions)
        fail(
          'UNSUPPORTED',
          'forward: the rows of this state are at different positions; step them one token at a time',
        );
    }
    return scope(() => {
      let residual = F.embedding(ids, this.embeddings); // (b, l, d)
      const es = this.options.embeddingScale;
      if (es !== undefined && es !== 1) residual = F.binary('mul', residual, this.constant(es, this.dModel));
      this.blocks.forEach((blk, i) => {
        residual = blockScope(residual, (r) => {
          let h = blk.mixer.forward(F.rmsnorm(r, blk.norm, this.eps), st?.layers[i], st?.position); // (b, l, d)
          if (blk.scale !== undefined && blk.scale !== 1) h = F.binary('mul', h, this.constant(blk.scale, this.dModel));
          return F.add(r, h);
        });
      });
      if (st) st.position += l;
      const normed = F.rmsnorm(residual, this.normF, this.eps); // (b, l, d)
      const div = this.options.logitsDivisor;
      const scaled = (logits: Tensor): Tensor =>
        div === undefined || div === 1 ? logits : F.binary('div', logits, this.constant(div, this.vocabSize));
      if (!opts.lastOnly) return scaled(F.linear(normed, this.lmHead)); // (b, l, V)
      return scaled(F.linear(this.lastRows(normed, b, l), this.lmHead)); // (b, V)
    });
  }

  /**
   * One recurrent step: ids (b) i32 -> logits (b, V). The returned tensor is a buffer reused by the
   * next step of the same batch size: read or copy it before stepping again.
   */
  step(ids: Tensor, state: ModelState): Tensor {
    const b = ids.size;
    if (state.batch !== b) fail('STATE_MISMATCH', `step: state has batch ${state.batch}, got ${b} ids`);
    const ws = this.workspace(b);
    const bk = this.backend;
    bk.embedding(ws.residual, ids, this.embeddings);
    const es = this.options.embeddingScale;
    if (es !== undefined && es !== 1) bk.binary('mul', ws.residual, ws.residual, this.constant(es, this.dModel));
    let pending = false; // ws.hidden holds a block's output not yet added into the residual
    let pendingScale = 1; // ... times this (its block's scale, taken into the add)
    this.blocks.forEach((blk, i) => {
      const st = state.layers[i];
      // residual += scale · previous hidden (if any), normed = rmsnorm(residual): one kernel, done first
      // when a block's output is pending, so that a fused block below reads the whole residual
      let normed = false;
      if (pending) {
        bk.addRmsnorm(ws.normed, ws.residual, ws.hidden, blk.norm, this.eps, pendingScale);
        pending = false;
        normed = true;
      }
      // where the backend fuses the whole block (norm, mixer, residual add), one call does it
      if (blk.mixer.blockStep?.(ws.residual, blk.norm, this.eps, st, blk.scale ?? 1, state.stepPosition)) return;
      if (!normed) bk.addRmsnorm(ws.normed, ws.residual, null, blk.norm, this.eps);
      blk.mixer.step(ws.normed, ws.hidden, st, state.stepPosition);
      pending = true;
      pendingScale = blk.scale ?? 1;
    });
    if (!pending && bk.fusedLinear && bk.fusesLinear?.(b, [this.lmHead]))
      bk.fusedLinear({
        out: ws.logits,
        x: ws.residual,
        weight: this.lmHead,
        norm: { weight: this.normF, eps: this.eps },
      });
    else {
      bk.addRmsnorm(ws.normed, ws.residual, pending ? ws.hidden : null, this.normF, this.eps, pendingScale);
      bk.matmul(ws.logits, ws.normed, this.lmHead, { transB: true });
    }
    const div = this.options.logitsDivisor;
    if (div !== undefined && div !== 1) bk.binary('div', ws.logits, ws.logits, this.constant(div, this.vocabSize));
    state.advance();
    return ws.logits;
  }

  /** Step from token ids held on the host. */
  stepIds(ids: ArrayLike<number>, state: ModelState): Tensor {
    this.checkIds(ids);
    const ws = this.workspace(ids.length);
    this.uploadIds(ws.ids, ids);
    return this.step(ws.ids, state);
  }

  /** Row l-1 of each sequence of x (b·l, d): a view with stride l·d, no copy. */
  protected lastRows(x: Tensor, b: number, l: number): Tensor {
    const d = this.dModel;
    return new Tensor(x.backend, x.storage, [b, d], 'f32', x.offset + (l - 1) * d, l * d, x);
  }

  /** Writes host ids into an i32 tensor (in place in host memory, `hostView`; else through upload + copy). */
  protected uploadIds(dst: Tensor, ids: ArrayLike<number>): void {
    const arr = Int32Array.from(ids);
    const host = this.backend.hostView?.(dst);
    if (host) host.data.set(arr, host.off);
    else {
      const t = this.backend.upload(arr, [arr.length], 'i32');
      this.backend.copy(dst, t);
      t.dispose();
    }
  }

  protected workspace(b: number): StepWorkspace {
    let ws = this.workspaces.get(b);
    if (!ws) {
      const bk = this.backend;
      const d = this.dModel;
      ws = {
        ids: bk.zeros([b], 'i32').keep(),
        residual: bk.alloc([b, d]).keep(),
        normed: bk.alloc([b, d]).keep(),
        hidden: bk.alloc([b, d]).keep(),
        logits: bk.alloc([b, this.vocabSize]).keep(),
      };
      this.workspaces.set(b, ws);
    }
    return ws;
  }

  /** `value` repeated n times, (n): made once and kept. */
  private constant(value: number, n: number): Tensor {
    const key = `${value}:${n}`;
    let t = this.constants.get(key);
    if (!t) {
      t = this.backend.upload(new Float32Array(n).fill(value), [n]).keep();
      this.constants.set(key, t);
    }
    return t;
  }

  /** A zero state (no tokens seen) for `batch` sequences. */
  initState(batch: number): ModelState {
    const layers = this.blocks.map((b) => b.mixer.initState(batch));
    const shapes = this.blocks.map((b) => b.mixer.stateShapes());
    return new ModelState(this.backend, layers, batch, 0, this.signature, shapes);
  }

  /** Every parameter under its Hugging Face name (`backbone.layers.0.mixer.A_log`, ...). */
  parameters(): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    const names = this.options.names ?? NAMES;
    m.set(names.embeddings, this.embeddings);
    this.blocks.forEach((blk, i) => {
      m.set(blk.names?.norm ?? `backbone.layers.${i}.norm.weight`, blk.norm);
      const prefix = blk.names?.mixer ?? `backbone.layers.${i}.mixer.`;
      for (const [k, t] of blk.mixer.parameters()) m.set(`${prefix}${k}`, t);
    });
    m.set(names.normF, this.normF);
    if (this.lmHead !== this.embeddings) m.set(names.lmHead, this.lmHead);
    return m;
  }

  /** Number of parameters (tied matrices counted once). */
  parameterCount(): number {
    let n = 0;
    for (const t of this.parameters().values()) n += t.size;
    return n;
  }

  /** Tell the mixers their parameters changed (after an optimiser step). */
  parametersChanged(): void {
    for (const b of this.blocks) b.mixer.parametersChanged();
  }
}

/**
 * One block of a parallel forward in its own scope: `fn(residual)` -> the next residual. The block's
 * intermediates are freed when it returns, and the residual it read too unless a recorded graph needs
 * it (training: the graph the block recorded holds it) or the caller says to keep it (`keepInput`). So a prompt's forward holds one block's
 * activations at a time, not every block's: at 512 tokens of Granite 4.0-H 1B that is ~80 MB instead of
 * ~3 GB, and the memory a first forward must grow (and the OS must fault in, page by page) is that much
 * smaller.
 */
export function blockScope(residual: Tensor, fn: (residual: Tensor) => Tensor, keepInput = false): Tensor {
  const next = scope(() => fn(residual));
  // with a recorded graph (training), the block's backward may read the residual: it stays to the end
  if (!keepInput && next !== residual && !gradNodeOf(next) && !residual.requiresGrad && !residual.kept)
    residual.dispose();
  return next;
}
