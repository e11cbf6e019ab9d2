import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import { CausalSelfAttention } from '../mixers/causal-attention.js';
import { Mamba2Mixer } from '../mixers/mamba2.js';
import type { Tensor } from '../tensor/tensor.js';
import { type HybridConfig, mamba2Of } from './config-hybrid.js';
import { stackAttention } from './stack-rows.js';

/**
 * The pieces every hybrid builder makes the same way (build-hybrid, build-falcon-h1, build-zamba2):
 * the loaded tensors by name, a Mamba-2 mixer and a causal attention from the Hub's tensor names under
 * a prefix. What differs per architecture (the norm's eps, whether the gated norm exists, its order)
 * is an argument.
 */
export interface LoadedTensors {
  /** A tensor the expected list required (so it was loaded). */
  g(name: string): Tensor;
  /** An optional tensor, null when the checkpoint has none. */
  o(name: string): Tensor | null;
}

export function loadedTensors(got: Map<string, Tensor>, arch: string): LoadedTensors {
  return {
    g(name: string): Tensor {
      const t = got.get(name);
      if (!t) fail('CONFIG_MISMATCH', `${arch} builder: tensor ${name} was not loaded (internal error)`);
      return t;
    },
    o: (name: string): Tensor | null => got.get(name) ?? null,
  };
}

/** The Mamba-2 mixer whose tensors sit under `p` (`…mamba.` / `…mixer.`). */
export function mamba2At(
  backend: Backend,
  c: HybridConfig,
  t: LoadedTensors,
  p: string,
  o: { normEps: number; gatedNorm?: boolean; normBeforeGate?: boolean },
): Mamba2Mixer {
  const m = mamba2Of(c);
  return new Mamba2Mixer(
    backend,
    {
      inProj: t.g(`${p}in_proj.weight`),
      inProjBias: t.o(`${p}in_proj.bias`),
      convWeight: t.g(`${p}conv1d.weight`),
      convBias: t.o(`${p}conv1d.bias`),
      dtBias: t.g(`${p}dt_bias`),
      ALog: t.g(`${p}A_log`),
      D: t.g(`${p}D`),
      normWeight: o.gatedNorm === false ? null : t.g(`${p}norm.weight`),
      outProj: t.g(`${p}out_proj.weight`),
      outProjBias: t.o(`${p}out_proj.bias`),
    },
    {
      d: c.dModel,
      h: m.nHeads,
      p: m.headDim,
      g: m.nGroups,
      n: m.dState,
      k: m.dConv,
      chunkSize: m.chunkSize,
      timeStepLimit: m.timeStepLimit,
      normEps: o.normEps,
      normGroupSize: m.normGroupSize,
      normBeforeGate: o.normBeforeGate ?? false,
    },
  );
}

/** The causal self-attention whose q/k/v/o projections sit under `p` (`…self_attn.`), q/k/v stacked. */
export function attentionAt(backend: Backend, c: HybridConfig, t: LoadedTensors, p: string): CausalSelfAttention {
  const a = c.attention;
  return new CausalSelfAttention(
    backend,
    // q, k, v in one storage, one product per token where the backend and dtype allow (stack-rows.ts)
    stackAttention(backend, {
      q: t.g(`${p}q_proj.weight`),
      k: t.g(`${p}k_proj.weight`),
      v: t.g(`${p}v_proj.weight`),
      o: t.g(`${p}o_proj.weight`),
      qBias: t.o(`${p}q_proj.bias`),
      kBias: t.o(`${p}k_proj.bias`),
      vBias: t.o(`${p}v_proj.bias`),
      oBias: t.o(`${p}o_proj.bias`),
    }),
    {
      d: c.dModel,
      heads: a.heads,
      kvHeads: a.kvHeads,
      headDim: a.headDim,
      rotaryDim: a.rotaryDim,
      ropeTheta: a.ropeTheta,
      scale: a.scale,
    },
  );
}
