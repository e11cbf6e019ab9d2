import type { Backend } from '../backend/backend.js';
import { requireMixerKernel } from '../backend/contract/mixers.js';
import { fail } from '../errors.js';
import * as F from '../ops/ops.js';
import * as S from '../ops/sequence.js';
import { noGrad } from '../tensor/grad-mode.js';
import { needsGrad, type Tensor } from '../tensor/tensor.js';
import type { Mixer, MixerState } from './mixer.js';
import { readCounter, rowOfEach, rowsOf, writeCounter } from './rows.js';

/**
 * Causal multi-head softmax attention with rotary positions (Vaswani et al. 2017; RoFormer, Su et
 * al. 2021), the Transformer's mixer:
 *   q, k, v = in_proj(x) (b, l, d) each, H heads of width dh = d/H
 *   q, k = rotary(q), rotary(k)       (positions 0, 1, ... or continuing from the cache's length)
 *   o = softmax(q kᵀ / sqrt(dh) + causal mask) v;  out = out_proj(o)
 *
 * State (generation, chunked prefill): a KV cache — k and v (b, maxContext, d) preallocated, and
 * `length` (1), the number of filled positions (an f32 holding an integer: exact up to 2^24, far past
 * any cache, and it keeps the state all-float so it serialises like Mamba's). The state does not stay
 * constant-size in what it uses: decoding token t reads t cached rows per layer, so time per token
 * grows with the context and memory in use is 2·t·d floats per layer (bench/context-cost.ts measures
 * both). The capacity is fixed when the mixer is built (`maxContext`); a full cache is a clear
 * STATE_MISMATCH rather than a silent reallocation, so `stateShapes` describes every state exactly.
 */
export interface AttentionWeights {
  inProj: Tensor; // (3d, d)
  outProj: Tensor; // (d, d)
}

export interface AttentionDims {
  d: number;
  heads: number;
  maxContext: number;
  ropeBase: number;
}

interface StepWorkspace {
  qkv: Tensor;
  q: Tensor;
  k: Tensor;
  o: Tensor;
}

export class AttentionMixer implements Mixer {
  readonly kind = 'attention';
  readonly headDim: number;
  private readonly workspaces = new Map<number, StepWorkspace>();

  constructor(
    readonly backend: Backend,
    readonly w: AttentionWeights,
    readonly dims: AttentionDims,
  ) {
    const { d, heads } = dims;
    if (!(Number.isInteger(heads) && heads > 0 && d % heads === 0 && (d / heads) % 2 === 0))
      fail('BAD_ARGUMENT', `attention: heads ${heads} must divide d_model ${d} into even head widths (rotary pairs)`);
    if (w.inProj.rows !== 3 * d || w.inProj.cols !== d || w.outProj.rows !== d)
      fail('SHAPE_MISMATCH', `attention: in_proj must be (${3 * d}, ${d}) and out_proj (${d}, ${d})`);
    this.headDim = d / heads;
  }

  private get scale(): number {
    return 1 / Math.sqrt(this.headDim);
  }

  forward(x: Tensor, state?: MixerState): Tensor {
    const { d, heads, ropeBase } = this.dims;
    const qkv = F.linear(x, this.w.inProj);
    if (!state) {
      const q = S.rotary(qkv.narrow(0, d), this.headDim, 0, ropeBase);
      const k = S.rotary(qkv.narrow(d, d), this.headDim, 0, ropeBase);
      return F.linear(S.attention(q, k, qkv.narrow(2 * d, d), heads, this.scale), this.w.outProj);
    }
    // Chunked prefill: append the chunk's keys and values to the cache, attend over everything so far.
    if (needsGrad(x, this.w.inProj, this.w.outProj))
      fail(
        'UNSUPPORTED',
        'attention: gradients through a KV cache are not supported; train on whole sequences without a state (or run under noGrad)',
      );
    return noGrad(() => {
      const { kc, vc, len } = this.cache(state);
      const [b, l] = x.shape as [number, number, number];
      const t0 = readCounter(len);
      if (t0 + l > kc.dim(1))
        fail(
          'STATE_MISMATCH',
          `attention: the KV cache holds ${kc.dim(1)} positions; ${t0} are used and ${l} more do not fit (build the mixer with a larger maxContext)`,
        );
      const q = S.rotary(qkv.narrow(0, d), this.headDim, t0, ropeBase);
      const k = S.rotary(qkv.narrow(d, d), this.headDim, t0, ropeBase);
      const bk = this.backend;
      for (let bi = 0; bi < b; bi++) {
        bk.copy(rowsOf(kc, bi, t0, l), rowsOf(k, bi, 0, l));
        bk.copy(rowsOf(vc, bi, t0, l), rowsOf(qkv.narrow(2 * d, d), bi, 0, l));
      }
      const o = bk.alloc([b, l, d]);
      requireMixerKernel(bk, 'attention')({ out: o, q, k: kc, v: vc, heads, scale: this.scale, keys: t0 + l });
      writeCounter(len, t0 + l);
      return F.linear(o, this.w.outProj);
    });
  }

  step(x: Tensor, out: Tensor, state: MixerState): void {
    const { d, heads, ropeBase } = this.dims;
    const { kc, vc, len } = this.cache(state);
    const b = x.rows;
    const t = readCounter(len);
    if (t >= kc.dim(1))
      fail(
        'STATE_MISMATCH',
        `attention: the KV cache is full (${kc.dim(1)} positions); build the mixer with a larger maxContext`,
      );
    let ws = this.workspaces.get(b);
    if (!ws) {
      const bk = this.backend;
      ws = {
        qkv: bk.alloc([b, 1, 3 * d]).keep(),
        q: bk.alloc([b, 1, d]).keep(),
        k: bk.alloc([b, 1, d]).keep(),
        o: bk.alloc([b, 1, d]).keep(),
      };
      this.workspaces.set(b, ws);
    }
    const bk = this.backend;
    const rotary = requireMixerKernel(bk, 'rotary');
    bk.matmul(ws.qkv, x, this.w.inProj, { transB: true });
    rotary(ws.q, ws.qkv.narrow(0, d), { headDim: this.headDim, start: t, base: ropeBase });
    rotary(ws.k, ws.qkv.narrow(d, d), { headDim: this.headDim, start: t, base: ropeBase });
    bk.copy(rowOfEach(kc, t), ws.k.reshape([b, d]));
    bk.copy(rowOfEach(vc, t), ws.qkv.narrow(2 * d, d).reshape([b, d]));
    requireMixerKernel(bk, 'attention')({ out: ws.o, q: ws.q, k: kc, v: vc, heads, scale: this.scale, keys: t + 1 });
    bk.matmul(out, ws.o, this.w.outProj, { transB: true });
    writeCounter(len, t + 1);
  }

  private cache(state: MixerState): { kc: Tensor; vc: Tensor; len: Tensor } {
    const kc = state.k,
      vc = state.v,
      len = state.length;
    if (!kc || !vc || !len)
      fail('STATE_MISMATCH', 'attention: state must hold "k", "v" and "length" (a KV cache from initState)');
    return { kc, vc, len };
  }

  initState(batch: number): MixerState {
    const { d, maxContext } = this.dims;
    const bk = this.backend;
    return {
      k: bk.zeros([batch, maxContext, d]).keep(),
      v: bk.zeros([batch, maxContext, d]).keep(),
      length: bk.zeros([1]).keep(),
    };
  }

  stateShapes(): Record<string, readonly number[]> {
    const { d, maxContext } = this.dims;
    return { k: [1, maxContext, d], v: [1, maxContext, d], length: [1] };
  }

  parameters(): Map<string, Tensor> {
    return new Map([
      ['in_proj.weight', this.w.inProj],
      ['out_proj.weight', this.w.outProj],
    ]);
  }

  parametersChanged(): void {}
}
