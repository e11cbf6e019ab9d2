import type { Backend } from '../src/backend/backend.js';
import { filled, Rng } from '../src/mixers/init.js';
import { Mamba2Mixer } from '../src/mixers/mamba2.js';
import { initMamba2Mixer } from '../src/mixers/mamba2-init.js';
import { Mamba3Mixer } from '../src/mixers/mamba3.js';
import { initMamba3Mixer } from '../src/mixers/mamba3-init.js';
import type { Mixer } from '../src/mixers/mixer.js';
import { LanguageModel, type Block, type LmConfig } from '../src/models/lm.js';
import type { Tensor } from '../src/tensor/tensor.js';

/**
 * The layers the Mamba-3 benches compare at one width (bench/mamba3-decode.ts, bench/mamba3-train.ts):
 * a variant names the layer and its d_state, mamba2-128 (Mamba-2: conv window + SSD state), mamba3-64
 * (Mamba-3 SISO), mimo4-64 (Mamba-3 MIMO of rank 4). Every variant has the same d_model, expand 2,
 * heads and headdim, ngroups 1, and the official initialisations; Mamba-3 uses rope_fraction 0.5
 * and no output norm (the official defaults).
 */
export interface Variant {
  name: string;
  layer: 'mamba2' | 'mamba3';
  n: number;
  R: number;
}

export function parseVariant(s: string): Variant {
  const m = /^(mamba2|mamba3|mimo(\d+))-(\d+)$/.exec(s.trim());
  if (!m) throw new Error(`--variants: "${s}" is not mamba2-<d_state>, mamba3-<d_state> or mimo<rank>-<d_state>`);
  const n = Number(m[3]);
  if (m[1] === 'mamba2') return { name: s.trim(), layer: 'mamba2', n, R: 1 };
  const R = m[2] === undefined ? 1 : Number(m[2]);
  if (n < 4 || n % 2 !== 0) throw new Error(`--variants: Mamba-3's d_state must be even and >= 4, got ${n}`);
  return { name: s.trim(), layer: 'mamba3', n, R };
}

export interface Shape {
  d: number; // d_model
  P: number; // headdim
  layers: number;
}

/** One mixer of variant `v` (d_inner = 2·d, heads = d_inner / P). */
export function variantMixer(bk: Backend, v: Variant, s: Shape, layerRng: Rng): Mixer {
  const e = 2 * s.d;
  if (e % s.P !== 0) throw new Error(`--headdim ${s.P} must divide d_inner ${e} (2 x --d-model)`);
  const h = e / s.P;
  if (v.layer === 'mamba2') {
    const dims = {
      d: s.d,
      h,
      p: s.P,
      g: 1,
      n: v.n,
      k: 4,
      chunkSize: 256,
      timeStepLimit: [0, Infinity] as const,
      normEps: 1e-5,
      normGroupSize: e,
      normBeforeGate: false,
    };
    return new Mamba2Mixer(bk, initMamba2Mixer(bk, layerRng, dims, s.layers), dims);
  }
  const mimo = v.R > 1;
  let split = Math.floor(v.n / 2); // rope_fraction 0.5, as the official default
  if (split % 2 !== 0) split -= 1;
  const dims = { d: s.d, h, p: s.P, n: v.n, g: 1, R: v.R, S: split / 2, aFloor: 1e-4, rotateHalves: mimo, eps: 1e-5 };
  return new Mamba3Mixer(bk, initMamba3Mixer(bk, layerRng, dims, { nLayer: s.layers, outprojNorm: false, mimo }), dims);
}

/** A language model of `s.layers` blocks of variant `v` around the embedding `emb` (tied lm_head). */
export function variantModel(bk: Backend, v: Variant, s: Shape, emb: Tensor, seed: number): LanguageModel<LmConfig> {
  const config: LmConfig = { arch: 'mamba3-bench', normEps: 1e-5 };
  const ones = (): Tensor => filled(bk, [s.d], () => 1);
  const blocks: Block[] = [];
  for (let i = 0; i < s.layers; i++)
    blocks.push({ norm: ones(), mixer: variantMixer(bk, v, s, new Rng(seed).fork(i + 1)) });
  return new LanguageModel(config, bk, emb, blocks, ones(), emb);
}
