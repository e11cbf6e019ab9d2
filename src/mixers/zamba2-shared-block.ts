import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import * as F from '../ops/ops.js';
import { concatLast } from '../ops/concat.js';
import { needsGrad, type Tensor } from '../tensor/tensor.js';
import { CausalSelfAttention } from './causal-attention.js';
import type { LowRankAdapter } from './lora.js';
import type { MixerState, StepPosition } from './mixer.js';

/**
 * One call of a Zamba2 shared transformer block (Glorioso et al. 2024, "Zamba2"; transformers'
 * Zamba2AttentionDecoderLayer + the hybrid layer's linear). The block's weights are held once and
 * referenced by every call; each call has its own LoRA adapters, its own output linear and its own KV
 * cache (its input differs per call). No residual inside:
 *   x  = rmsnorm(concat(h, e0)) · input_layernorm          h the residual stream, e0 the embeddings (b, l, 2d)
 *   a  = attention(x)                                      q/k/v = proj(x) + adapter_j(x), RoPE, o_proj -> (b, l, d)
 *   gu = gate_up(rmsnorm(a) · pre_ff_layernorm) + adapter_j(...)     (b, l, 2I) = [gate; up]
 *   t  = linear_j(down(act(gate) ⊙ up))                    (b, l, d), added to the Mamba layer's input
 * The attention's softmax scale is 1/sqrt(dh / 2) (dh = 2d / heads), as Zamba2 trained it.
 */
export interface SharedBlockWeights {
  inputNorm: Tensor; // (2d)
  q: Tensor; // (H·dh, 2d)
  k: Tensor; // (G·dh, 2d)
  v: Tensor; // (G·dh, 2d)
  /** q, k, v stacked, of which they are row views (CausalAttentionWeights.qkv), or null. */
  qkv?: Tensor | null; // (H·dh + 2·G·dh, 2d)
  o: Tensor; // (d, H·dh)
  preFfNorm: Tensor; // (d)
  gateUp: Tensor; // (2I, d) rows [gate; up]
  gateUpBias: Tensor | null; // (2I)
  down: Tensor; // (d, I)
  downBias: Tensor | null; // (d)
}

/** What each call owns. */
export interface SharedBlockCallWeights {
  /** q, k, v adapters (use_shared_attention_adapter), else null. */
  attention: { q: LowRankAdapter; k: LowRankAdapter; v: LowRankAdapter } | null;
  gateUp: LowRankAdapter; // (2I, d) correction
  linear: Tensor; // (d, d) the hybrid layer's own projection of the block's output
}

export interface SharedBlockDims {
  d: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rotaryDim: number;
  ropeTheta: number;
  scale: number;
  /** I: the MLP's hidden width. */
  intermediate: number;
  activation: 'gelu' | 'silu';
  eps: number;
}

interface StepWorkspace {
  cat: Tensor; // (b, 2d)
  x: Tensor; // (b, 2d)
  a: Tensor; // (b, d)
  an: Tensor; // (b, d)
  gu: Tensor; // (b, 2I)
  act: Tensor; // (b, I)
  m: Tensor; // (b, d)
}

export class SharedBlockCall {
  /** The attention over the shared q/k/v/o (references, not copies) with this call's adapters. */
  readonly attention: CausalSelfAttention;
  private readonly workspaces = new Map<number, StepWorkspace>();

  constructor(
    readonly backend: Backend,
    readonly shared: SharedBlockWeights,
    readonly own: SharedBlockCallWeights,
    readonly dims: SharedBlockDims,
  ) {
    const { d, intermediate: I } = dims;
    if (shared.inputNorm.size !== 2 * d || shared.preFfNorm.size !== d)
      fail('SHAPE_MISMATCH', `zamba2 shared block: norms must be (${2 * d}) and (${d})`);
    if (shared.gateUp.rows !== 2 * I || shared.gateUp.cols !== d || shared.down.rows !== d || shared.down.cols !== I)
      fail('SHAPE_MISMATCH', `zamba2 shared block: gate_up must be (${2 * I}, ${d}) and down (${d}, ${I})`);
    if (own.linear.rows !== d || own.linear.cols !== d)
      fail('SHAPE_MISMATCH', `zamba2 shared block: the layer's linear must be (${d}, ${d})`);
    this.attention = new CausalSelfAttention(
      backend,
      {
        q: shared.q,
        k: shared.k,
        v: shared.v,
        qkv: shared.qkv ?? null,
        o: shared.o,
        qBias: null,
        kBias: null,
        vBias: null,
        oBias: null,
        adapters: own.attention,
      },
      {
        d: 2 * d,
        heads: dims.heads,
        kvHeads: dims.kvHeads,
        headDim: dims.headDim,
        rotaryDim: dims.rotaryDim,
        ropeTheta: dims.ropeTheta,
        scale: dims.scale,
        outWidth: d,
      },
    );
  }

  /** Parallel form: h, e0 (b, l, d) -> t (b, l, d); with a state, continues this call's KV cache. */
  forward(h: Tensor, e0: Tensor, state?: MixerState, position?: number): Tensor {
    const { d, intermediate: I, eps } = this.dims;
    const s = this.shared;
    if (needsGrad(h, e0, ...this.parameters())) return this.trainingForward(h, e0);
    const cat = this.backend.alloc([...h.shape.slice(0, -1), 2 * d]); // (b, l, 2d)
    this.backend.copy(cat.narrow(0, d), h);
    this.backend.copy(cat.narrow(d, d), e0);
    const x = F.rmsnorm(cat, s.inputNorm, eps); // (b, l, 2d)
    const a = this.attention.forward(x, state, position); // (b, l, d)
    const an = F.rmsnorm(a, s.preFfNorm, eps);
    const gu = F.linear(an, s.gateUp, s.gateUpBias); // (b, l, 2I)
    this.own.gateUp.addTo(gu, an);
    const act = F.binary('mul', F.unary(this.dims.activation, gu.narrow(0, I)), gu.narrow(I, I)); // (b, l, I)
    return F.linear(F.linear(act, s.down, s.downBias), this.own.linear); // (b, l, d)
  }

  /** The parallel form recorded for autograd (training, from position 0): the concat and adapters as ops. */
  private trainingForward(h: Tensor, e0: Tensor): Tensor {
    const { intermediate: I, eps } = this.dims;
    const s = this.shared;
    const x = F.rmsnorm(concatLast(h, e0), s.inputNorm, eps); // (b, l, 2d)
    const an = F.rmsnorm(this.attention.forward(x), s.preFfNorm, eps); // (b, l, d)
    const gu = F.add(F.linear(an, s.gateUp, s.gateUpBias), this.own.gateUp.apply(an)); // (b, l, 2I)
    const act = F.mul(F.unary(this.dims.activation, gu.narrow(0, I)), gu.narrow(I, I)); // (b, l, I)
    return F.linear(F.linear(act, s.down, s.downBias), this.own.linear); // (b, l, d)
  }

  /** Every tensor this call reads: the shared block's and its own. */
  private parameters(): Tensor[] {
    const s = this.shared,
      o = this.own;
    const adapters = [o.gateUp, ...(o.attention ? Object.values(o.attention) : [])];
    return [
      s.inputNorm,
      s.q,
      s.k,
      s.v,
      s.o,
      s.preFfNorm,
      s.gateUp,
      s.down,
      o.linear,
      ...adapters.flatMap((a) => [a.down, a.up]),
      ...[s.gateUpBias, s.downBias].filter((t): t is Tensor => t !== null),
    ];
  }

  /** Recurrent form: h, e0 (b, d) -> out (b, d); advances this call's KV cache. */
  step(h: Tensor, e0: Tensor, out: Tensor, state: MixerState, position?: StepPosition): void {
    const bk = this.backend;
    const { d, intermediate: I, eps } = this.dims;
    const s = this.shared;
    const ws = this.workspace(h.rows);
    bk.copy(ws.cat.narrow(0, d), h);
    bk.copy(ws.cat.narrow(d, d), e0);
    bk.addRmsnorm(ws.x, ws.cat, null, s.inputNorm, eps);
    this.attention.step(ws.x, ws.a, state, position);
    bk.addRmsnorm(ws.an, ws.a, null, s.preFfNorm, eps);
    bk.matmul(ws.gu, ws.an, s.gateUp, { transB: true, bias: s.gateUpBias });
    this.own.gateUp.stepAddTo(ws.gu, ws.an);
    bk.unary(this.dims.activation, ws.act, ws.gu.narrow(0, I));
    bk.binary('mul', ws.act, ws.act, ws.gu.narrow(I, I));
    bk.matmul(ws.m, ws.act, s.down, { transB: true, bias: s.downBias });
    bk.matmul(out, ws.m, this.own.linear, { transB: true });
  }

  private workspace(b: number): StepWorkspace {
    let ws = this.workspaces.get(b);
    if (!ws) {
      const { d, intermediate: I } = this.dims;
      const bk = this.backend;
      ws = {
        cat: bk.alloc([b, 2 * d]).keep(),
        x: bk.alloc([b, 2 * d]).keep(),
        a: bk.alloc([b, d]).keep(),
        an: bk.alloc([b, d]).keep(),
        gu: bk.alloc([b, 2 * I]).keep(),
        act: bk.alloc([b, I]).keep(),
        m: bk.alloc([b, d]).keep(),
      };
      this.workspaces.set(b, ws);
    }
    return ws;
  }

  /** This call's KV cache: `k`, `v` (b, capacity, G·dh) and `length`. */
  initState(batch: number): MixerState {
    return this.attention.initState(batch);
  }

  stateShapes(): Record<string, readonly number[]> {
    return this.attention.stateShapes();
  }

  dispose(): void {
    for (const ws of this.workspaces.values()) for (const t of Object.values(ws)) t.dispose();
    this.workspaces.clear();
    this.attention.dispose();
    for (const a of [this.own.gateUp, ...(this.own.attention ? Object.values(this.own.attention) : [])]) a.dispose();
  }
}
