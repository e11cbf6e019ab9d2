import type { Backend } from '../backend/backend.js';
import { requireMixerKernel } from '../backend/contract/mixers.js';
import { fail } from '../errors.js';
import * as F from '../ops/ops.js';
import { noGrad } from '../tensor/grad-mode.js';
import { needsGrad, type Tensor } from '../tensor/tensor.js';
import { attentionForward } from './causal-attention-train.js';
import type { LowRankAdapter } from './lora.js';
import {
  isDevicePositions,
  parameterMap,
  type DevicePositions,
  type Mixer,
  type MixerState,
  type StepPosition,
} from './mixer.js';
import { readCounter, rowOfEach, rowsOf } from './rows.js';

/**
 * The causal self-attention of hybrid language models (Granite 4.0-H, Bamba, Nemotron-H, ...), as
 * transformers' Llama-style attention computes it (training: causal-attention-train.ts):
 *   q = q_proj(x) (b, l, H·dh);  k = k_proj(x), v = v_proj(x) (b, l, G·dh)   G kv heads (GQA), G | H
 *   q, k = rotary(q, k) on the first `rotaryDim` dims of each head (0: NoPE; dh: full; partial rotary)
 *   o = softmax(scale · q kᵀ + causal mask) v, query head h reading kv head floor(h / (H/G));  out = o_proj(o)
 * `scale` is 1/sqrt(dh) unless the checkpoint overrides it (Granite's attention_multiplier).
 * Optional low-rank adapters add to q, k, v before RoPE (Zamba2's shared block: q = q_proj(x) + B(A x)), and
 * `outWidth` lets o_proj map to another width than the input's (Zamba2: input 2·hidden, output hidden).
 *
 * State: the KV cache, `k` and `v` (b, capacity, G·dh) and `length` (b), each sequence's filled positions
 * (an f32 holding an integer, exact to 2^24, so the state stays all-float and serialises like Mamba's).
 * The model passes the position it tracks on the host, so no device read is needed (WebGPU); where the
 * host addresses the memory, the counter is checked against it (a loaded state is untrusted). A step may
 * take a position per row (a batch of sequences at different context lengths, the server's decode
 * batch): each row then writes its key and value at its own position, rotates by it, and attends over
 * its own filled rows only (the attention kernel's `rowKeys`, read from `length`). Or the positions live on
 * the device (DevicePositions: the device loop's recorded step), where kvAppend reads them and the
 * attention spans the whole capacity, each row bounded by its own count: no launch depends on them. Unlike
 * a Mamba layer's, it grows with the context: 2·G·dh floats per token per sequence. The capacity doubles
 * when a token does not fit (amortised: a step allocates only when it crosses a power of two), so no
 * maximum context is fixed when the model is built; `stateShapes` marks the growing dimension with -1.
 */
export interface CausalAttentionWeights {
  q: Tensor; // (H·dh, d)
  k: Tensor; // (G·dh, d)
  v: Tensor; // (G·dh, d)
  o: Tensor; // (out, H·dh); out = outWidth ?? d
  qBias: Tensor | null; // (H·dh)
  kBias: Tensor | null; // (G·dh)
  vBias: Tensor | null; // (G·dh)
  oBias: Tensor | null; // (out)
  /**
   * q, k, v stacked in one storage, rows [q; k; v] (H·dh + 2·G·dh, d), of which q, k, v are row views
   * (models/stack-rows.ts): inference takes this one product and splits its output by columns.
   */
  qkv?: Tensor | null;
  /** [qBias; kBias; vBias] (H·dh + 2·G·dh), of which the three biases are windows; with `qkv` when biased. */
  qkvBias?: Tensor | null;
  /** Per-call LoRA adapters on q, k, v (Zamba2), added to the projections before RoPE. */
  adapters?: { q: LowRankAdapter; k: LowRankAdapter; v: LowRankAdapter } | null;
}

export interface CausalAttentionDims {
  d: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Leading dims of each head that RoPE rotates (even, <= headDim); 0 for no positional encoding. */
  rotaryDim: number;
  /** RoPE frequency base (rope_theta). */
  ropeTheta: number;
  /** Softmax scale. */
  scale: number;
  /** o_proj's output width, when not d (Zamba2's shared attention reads 2·hidden and writes hidden). */
  outWidth?: number;
}

/** The cache's first capacity (rows per sequence); it doubles from there. */
const FIRST_CAPACITY = 16;

interface StepWorkspace {
  /**
   * q, k and v side by side, of which they are column views (kvAppend rotates q in it, kv-append.ts); with
   * stacked weights (`qkv`) one product writes it whole, else three products write its views.
   */
  all: Tensor; // (b, 1, H·dh + 2·G·dh)
  q: Tensor; // (b, 1, H·dh)
  k: Tensor; // (b, 1, G·dh)
  v: Tensor; // (b, 1, G·dh)
  o: Tensor; // (b, 1, H·dh)
  /** Each row's position, for a step with a position per row (rotary's rowStarts). */
  starts: Tensor; // (b)
}

export class CausalSelfAttention implements Mixer {
  readonly kind = 'attention';
  private readonly workspaces = new Map<number, StepWorkspace>();
  /** Widths of q/o (H·dh) and of k/v (G·dh). */
  readonly qWidth: number;
  readonly kvWidth: number;

  constructor(
    readonly backend: Backend,
    readonly w: CausalAttentionWeights,
    readonly dims: CausalAttentionDims,
  ) {
    const { d, heads: H, kvHeads: G, headDim: dh, rotaryDim } = dims;
    if (!(Number.isInteger(H) && Number.isInteger(G) && H > 0 && G > 0 && H % G === 0))
      fail('BAD_ARGUMENT', `attention: ${G} key/value heads must divide the ${H} query heads`);
    if (!(Number.isInteger(rotaryDim) && rotaryDim >= 0 && rotaryDim <= dh && rotaryDim % 2 === 0))
      fail('BAD_ARGUMENT', `attention: the rotary width ${rotaryDim} must be even and at most head_dim ${dh}`);
    this.qWidth = H * dh;
    this.kvWidth = G * dh;
    const want: [string, Tensor, number, number][] = [
      ['q_proj', w.q, this.qWidth, d],
      ['k_proj', w.k, this.kvWidth, d],
      ['v_proj', w.v, this.kvWidth, d],
      ['o_proj', w.o, dims.outWidth ?? d, this.qWidth],
      ...(w.qkv ? [['[q; k; v]', w.qkv, this.qWidth + 2 * this.kvWidth, d] as [string, Tensor, number, number]] : []),
    ];
    for (const [name, t, r, c] of want)
      if (t.rows !== r || t.cols !== c)
        fail('SHAPE_MISMATCH', `attention: ${name} must be (${r}, ${c}), got (${t.shape.join(', ')})`);
  }

  /**
   * RoPE in place on the first rotaryDim dims of each of `heads` heads of x (b, l, heads·dh), from
   * position `start`, or from each sequence's own (`rowStarts` (b)).
   */
  private rope(x: Tensor, heads: number, start: number, rowStarts?: Tensor): void {
    const { headDim: dh, rotaryDim, ropeTheta } = this.dims;
    if (rotaryDim === 0) return;
    const rotary = requireMixerKernel(this.backend, 'rotary');
    const o = { start, base: ropeTheta, ...(rowStarts ? { rowStarts } : {}) };
    if (rotaryDim === dh) {
      rotary(x, x, { headDim: dh, ...o });
      return;
    }
    // Partial rotary: each head's leading rotaryDim columns are a (b, l, rotaryDim) view of their own.
    for (let h = 0; h < heads; h++) {
      const part = x.narrow(h * dh, rotaryDim);
      rotary(part, part, { headDim: rotaryDim, ...o });
    }
  }

  forward(x: Tensor, state?: MixerState, position?: number): Tensor {
    const w = this.w;
    const ad = w.adapters ? [w.adapters.q, w.adapters.k, w.adapters.v].flatMap((a) => [a.down, a.up]) : [];
    if (needsGrad(x, w.q, w.k, w.v, w.o, w.qBias, w.kBias, w.vBias, w.oBias, ...ad)) {
      // training: whole sequences from position 0
      if (state)
        fail(
          'UNSUPPORTED',
          'attention of hybrid models: gradients through a KV cache are not supported; train on whole sequences without a state (or run under noGrad)',
        );
      return attentionForward(w, this.dims, x);
    }
    const { heads, kvHeads, scale } = this.dims;
    return noGrad(() => {
      const bk = this.backend;
      const [b, l] = x.shape as [number, number, number];
      const [q, k, v] = this.project(x); // (b, l, H·dh), (b, l, G·dh), (b, l, G·dh)
      const ad = this.w.adapters;
      if (ad) {
        ad.q.addTo(q, x);
        ad.k.addTo(k, x);
        ad.v.addTo(v, x);
      }
      const t0 = state ? this.length(state, position) : 0;
      this.rope(q, heads, t0);
      this.rope(k, kvHeads, t0);
      const o = bk.alloc([b, l, this.qWidth]); // (b, l, H·dh)
      const attention = requireMixerKernel(bk, 'attention');
      if (!state) {
        attention({ out: o, q, k, v, heads, kvHeads, scale });
      } else {
        this.reserve(state, t0, t0 + l);
        const kc = state.k,
          vc = state.v;
        for (let bi = 0; bi < b; bi++) {
          bk.copy(rowsOf(kc, bi, t0, l), rowsOf(k, bi, 0, l));
          bk.copy(rowsOf(vc, bi, t0, l), rowsOf(v, bi, 0, l));
        }
        attention({ out: o, q, k: kc, v: vc, heads, kvHeads, scale, keys: t0 + l });
        this.setLengths(state.length, t0 + l);
      }
      return F.linear(o, this.w.o, this.w.oBias); // (b, l, out)
    });
  }

  step(x: Tensor, out: Tensor, state: MixerState, position?: StepPosition): void {
    const o = this.attendStep(x, state, position);
    this.backend.matmul(out, o, this.w.o, { transB: true, bias: this.w.oBias });
  }

  /** `step`, its output added into `out` by o_proj itself (Falcon-H1's parallel sum: no separate add). */
  stepAdd(x: Tensor, out: Tensor, state: MixerState, position?: StepPosition): void {
    const o = this.attendStep(x, state, position);
    this.backend.matmul(out, o, this.w.o, { transB: true, bias: this.w.oBias, accumulate: true });
  }

  /**
   * The residual block fused where the backend does it (Mixer.blockStep): q, k and v of rmsnorm(residual)
   * with the norm in their product (one product over the stack [q; k; v], or three), o_proj added into the
   * residual times `scale`. Not with adapters (Zamba2's LoRA reads the normed input).
   */
  blockStep(
    residual: Tensor,
    norm: Tensor,
    eps: number,
    state: MixerState,
    scale = 1,
    position?: StepPosition,
  ): boolean {
    if (!this.fusesBlock(residual.rows)) return false;
    this.blockRead(residual, norm, eps, state, position)(scale);
    return true;
  }

  fusesBlock(rows: number): boolean {
    const bk = this.backend;
    const w = this.w;
    const products = w.qkv ? [w.qkv, w.o] : [w.q, w.k, w.v, w.o];
    return !w.adapters && !!bk.fusedLinear && !!bk.fusesLinear?.(rows, products);
  }

  /** blockStep up to the attention output (everything that reads the residual); returns o_proj's add. */
  blockRead(
    residual: Tensor,
    norm: Tensor,
    eps: number,
    state: MixerState,
    position?: StepPosition,
  ): (scale: number) => void {
    const o = this.attendStep(residual, state, position, { weight: norm, eps });
    return (scale) =>
      this.backend.fusedLinear!({ out: residual, x: o, weight: this.w.o, bias: this.w.oBias, accumulate: scale });
  }

  /**
   * One token's attention up to o_proj: q, k, v of x (of rmsnorm(x) · norm.weight with `norm`, in the
   * products), the rotary, the cache write and the attention; returns the attention output (b, 1, H·dh),
   * a workspace buffer.
   */
  private attendStep(
    x: Tensor,
    state: MixerState,
    position: StepPosition | undefined,
    norm?: { weight: Tensor; eps: number },
  ): Tensor {
    const { heads, kvHeads, scale } = this.dims;
    const bk = this.backend;
    const b = x.rows;
    const device = isDevicePositions(position) ? position : undefined; // positions the kernels read
    const rows = typeof position === 'object' && !device ? (position as readonly number[]) : undefined; // one per row
    const t = device
      ? this.deviceLength(state, device, b)
      : rows
        ? this.rowLengths(state, rows, b)
        : this.length(state, position as number | undefined); // (the largest)
    this.reserve(state, t, t + 1);
    let ws = this.workspaces.get(b);
    if (!ws) {
      const { qWidth: qw, kvWidth: kw } = this;
      const all = bk.alloc([b, 1, qw + 2 * kw]).keep();
      ws = {
        all,
        q: all.narrow(0, qw),
        k: all.narrow(qw, kw),
        v: all.narrow(qw + kw, kw),
        o: bk.alloc([b, 1, qw]).keep(),
        starts: bk.alloc([b]).keep(),
      };
      this.workspaces.set(b, ws);
    }
    const qkv = this.w.qkv;
    if (norm && qkv) bk.fusedLinear!({ out: ws.all, x, weight: qkv, bias: this.w.qkvBias ?? null, norm });
    else if (norm) {
      bk.fusedLinear!({ out: ws.q, x, weight: this.w.q, bias: this.w.qBias, norm });
      bk.fusedLinear!({ out: ws.k, x, weight: this.w.k, bias: this.w.kBias, norm });
      bk.fusedLinear!({ out: ws.v, x, weight: this.w.v, bias: this.w.vBias, norm });
    } else if (qkv) bk.matmul(ws.all, x, qkv, { transB: true, bias: this.w.qkvBias ?? null });
    else {
      bk.matmul(ws.q, x, this.w.q, { transB: true, bias: this.w.qBias });
      bk.matmul(ws.k, x, this.w.k, { transB: true, bias: this.w.kBias });
      bk.matmul(ws.v, x, this.w.v, { transB: true, bias: this.w.vBias });
    }
    const ad = this.w.adapters;
    if (ad) {
      ad.q.stepAddTo(ws.q, x);
      ad.k.stepAddTo(ws.k, x);
      ad.v.stepAddTo(ws.v, x);
    }
    const attention = requireMixerKernel(bk, 'attention');
    // every path attends the same way; batched rows each read their own number of keys (state.length)
    const attend = (perRow: boolean, keys = t + 1): void =>
      attention({
        out: ws.o,
        q: ws.q,
        k: state.k,
        v: state.v,
        heads,
        kvHeads,
        scale,
        keys,
        ...(perRow ? { rowKeys: state.length } : {}),
      });
    // where the backend fuses them, the keys' rotary, the cache writes and the counters are one kernel
    const { rotaryDim, headDim, ropeTheta } = this.dims;
    // (and the queries' rotary too)
    const append = bk.kvAppend
      ? (start: number, rowStarts?: Tensor): void =>
          bk.kvAppend!({
            k: ws.k,
            v: ws.v,
            kCache: state.k,
            vCache: state.v,
            length: state.length,
            start,
            ...(rowStarts ? { rowStarts } : {}),
            ...(rotaryDim > 0 ? { rotary: { dim: rotaryDim, headDim, base: ropeTheta }, q: ws.q } : {}),
          })
      : undefined;
    if (device) {
      // nothing here depends on the position: each row's key goes where rows[r] says, and the attention
      // spans the whole capacity, each row bounded by its count (which the append just advanced)
      if (!append) fail('UNSUPPORTED', `attention: the ${bk.name} backend cannot step at positions held on the device`);
      append(0, device.rows);
      attend(true, state.k.dim(1));
    } else if (!rows && append) {
      append(t);
      attend(false);
    } else if (append) {
      this.setLengths(ws.starts, rows!);
      append(0, ws.starts);
      attend(true);
    } else if (!rows) {
      this.rope(ws.q, heads, t);
      this.rope(ws.k, kvHeads, t);
      bk.copy(rowOfEach(state.k, t), ws.k.reshape([b, this.kvWidth]));
      bk.copy(rowOfEach(state.v, t), ws.v.reshape([b, this.kvWidth]));
      attend(false);
      this.setLengths(state.length, t + 1);
    } else {
      // each row rotated by its own position, its key and value written there, its own keys attended
      if (this.dims.rotaryDim > 0) {
        this.setLengths(ws.starts, rows);
        this.rope(ws.q, heads, 0, ws.starts);
        this.rope(ws.k, kvHeads, 0, ws.starts);
      }
      for (let r = 0; r < b; r++) {
        const p = rows[r];
        bk.copy(rowsOf(state.k, r, p, 1), rowsOf(ws.k, r, 0, 1));
        bk.copy(rowsOf(state.v, r, p, 1), rowsOf(ws.v, r, 0, 1));
      }
      this.setLengths(
        state.length,
        Array.from(rows, (p) => p + 1),
      );
      attend(true);
    }
    return ws.o;
  }

  /** q, k, v of x (b, l, d): one product over the stack and its column views, or three products. */
  private project(x: Tensor): [Tensor, Tensor, Tensor] {
    const w = this.w;
    if (!w.qkv) return [F.linear(x, w.q, w.qBias), F.linear(x, w.k, w.kBias), F.linear(x, w.v, w.vBias)];
    const { qWidth: qw, kvWidth: kw } = this;
    const qkv = F.linear(x, w.qkv, w.qkvBias ?? null); // (b, l, H·dh + 2·G·dh)
    return [qkv.narrow(0, qw), qkv.narrow(qw, kw), qkv.narrow(qw + kw, kw)];
  }

  /**
   * The filled positions of each row (a step with a position per row), checked like `length` (against
   * the counters where the host reads them); returns the largest.
   */
  private rowLengths(state: MixerState, rows: readonly number[], b: number): number {
    const { length } = cacheOf(state);
    if (rows.length !== b || length.size !== b)
      fail('STATE_MISMATCH', `attention: ${rows.length} row positions and ${length.size} counters for a batch of ${b}`);
    const host = this.backend.hostView?.(length);
    let most = 0;
    for (let r = 0; r < b; r++) {
      const t = rows[r];
      if (host && host.data[host.off + r] !== t)
        fail(
          'STATE_MISMATCH',
          `attention: the KV cache of row ${r} holds ${host.data[host.off + r]} positions, the state says ${t} tokens were seen`,
        );
      checkFilled(state, t, ` of row ${r}`);
      most = Math.max(most, t);
    }
    return most;
  }

  /**
   * Positions on the device: the largest as the host tracks it (checked against the cache like `length`;
   * the rows' own counts the host cannot read, and the kernels bound each row by its own).
   */
  private deviceLength(state: MixerState, device: DevicePositions, b: number): number {
    if (device.rows.size !== b || device.rows.rank !== 1)
      fail('SHAPE_MISMATCH', `attention: device positions must be (${b}), got (${device.rows.shape.join(', ')})`);
    checkFilled(state, device.most);
    return device.most;
  }

  /** Writes the filled positions of every row (or the rows' positions): one count for all, or one per row. */
  private setLengths(length: Tensor, n: number | readonly number[]): void {
    const b = length.size;
    const host = this.backend.hostView?.(length);
    if (host) {
      for (let r = 0; r < b; r++) host.data[host.off + r] = typeof n === 'number' ? n : n[r];
      return;
    }
    // one count for all: a fill kernel (an upload would be a queue write into a pooled buffer, which
    // submits the pending work when the previous layer's upload used that buffer: a submit per layer)
    if (typeof n === 'number') {
      this.backend.fill(length, n);
      return;
    }
    const values = Float32Array.from(n);
    const up = this.backend.upload(values, [b]);
    this.backend.copy(length, up);
    up.dispose();
  }

  /**
   * Filled positions of the cache: the model's position, else the counter; checked against the capacity
   * and, where the host can read it, the counter against the position (a loaded state is untrusted).
   */
  private length(state: MixerState, position: number | undefined): number {
    const { length } = cacheOf(state);
    const host = this.backend.hostView !== undefined;
    const t = position === undefined || host ? readCounter(length) : position;
    if (position !== undefined && t !== position)
      fail(
        'STATE_MISMATCH',
        `attention: the KV cache holds ${t} positions, the state says ${position} tokens were seen`,
      );
    checkFilled(state, t);
    return t;
  }

  /** Grows the cache (doubling) so that it holds `need` positions per sequence; keeps the filled rows. */
  private reserve(state: MixerState, used: number, need: number): void {
    const cap = state.k.dim(1);
    if (need <= cap) return;
    let next = Math.max(cap, FIRST_CAPACITY);
    while (next < need) next *= 2;
    const bk = this.backend;
    const b = state.k.dim(0);
    for (const name of ['k', 'v'] as const) {
      const old = state[name];
      const grown = bk.zeros([b, next, this.kvWidth]).keep();
      if (used > 0) for (let bi = 0; bi < b; bi++) bk.copy(rowsOf(grown, bi, 0, used), rowsOf(old, bi, 0, used));
      old.dispose();
      state[name] = grown;
    }
  }

  initState(batch: number): MixerState {
    const bk = this.backend;
    return {
      k: bk.zeros([batch, FIRST_CAPACITY, this.kvWidth]).keep(),
      v: bk.zeros([batch, FIRST_CAPACITY, this.kvWidth]).keep(),
      length: bk.zeros([batch]).keep(),
    };
  }

  /** -1: the dimension grows with the context (the cache's capacity). */
  stateShapes(): Record<string, readonly number[]> {
    return { k: [1, -1, this.kvWidth], v: [1, -1, this.kvWidth], length: [1] };
  }

  parameters(): Map<string, Tensor> {
    const w = this.w;
    return parameterMap([
      ['q_proj.weight', w.q],
      ['k_proj.weight', w.k],
      ['v_proj.weight', w.v],
      ['o_proj.weight', w.o],
      ['q_proj.bias', w.qBias],
      ['k_proj.bias', w.kBias],
      ['v_proj.bias', w.vBias],
      ['o_proj.bias', w.oBias],
    ]);
  }

  parametersChanged(): void {}

  dispose(): void {
    for (const ws of this.workspaces.values()) for (const t of [ws.all, ws.o, ws.starts]) t.dispose();
    this.workspaces.clear();
  }
}

/** The KV cache of an attention state, checked to be one. */
function cacheOf(state: MixerState): { k: Tensor; v: Tensor; length: Tensor } {
  const { k, v, length } = state;
  if (!k || !v || !length)
    fail('STATE_MISMATCH', 'attention: state must hold "k", "v" and "length" (a KV cache from initState)');
  return { k, v, length };
}

/** Checks that `t` filled positions fit the cache (`row`: which row, for the message). */
function checkFilled(state: MixerState, t: number, row = ''): void {
  const { k, v } = cacheOf(state);
  if (!(Number.isInteger(t) && t >= 0 && t <= k.dim(1) && k.dim(1) === v.dim(1)))
    fail('STATE_MISMATCH', `attention: the KV cache${row} says ${t} positions are filled of its ${k.dim(1)}`);
}
