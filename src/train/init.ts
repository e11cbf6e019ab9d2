import type { Backend } from '../backend/backend.js';
import type { TensorSource } from '../io/tensor-source.js';
import { memorySource } from '../io/byte-source.js';
import { openSafetensors } from '../io/safetensors.js';
import { encodeSafetensors } from '../io/safetensors-writer.js';
import { buildMamba, expectedMambaTensors } from '../models/build-mamba.js';
import type { MambaConfig } from '../models/config.js';
import type { LanguageModel } from '../models/lm.js';
import { Rng } from './rng.js';

/**
 * The reference initialisation of a new Mamba-1 model (REFERENCE.md §1: the official `mamba_simple.py`
 * and `mixer_seq_simple._init_weights`), from a seed:
 *   embeddings            N(0, initializerRange²)                   (0.02)
 *   in_proj, x_proj       PyTorch's Linear default: U(±1/√fan_in)   (kaiming_uniform, a = √5)
 *   out_proj              the same, divided by √n_layer             (rescale_prenorm_residual)
 *   linear biases         0
 *   conv1d weight, bias   PyTorch's Conv1d default: U(±1/√k)        (fan_in = k for a depthwise conv)
 *   dt_proj.weight        U(±dt_rank^-0.5 · timeStepScale)          (dt_init "random")
 *   dt_proj.bias          softplus⁻¹(dt) = dt + log(-expm1(-dt)),
 *                         dt = max(exp(U(0,1)(ln dtMax − ln dtMin) + ln dtMin), dtFloor)
 *   A_log                 log(1..n) for every channel (S4D-real);  D = 1;  norms = 1
 * lm_head (when not tied) is drawn like the embeddings.
 */
export interface InitOptions {
  seed: number;
  initializerRange?: number;
  timeStepMin?: number;
  timeStepMax?: number;
  timeStepFloor?: number;
  timeStepScale?: number;
  rescalePrenormResidual?: boolean;
}

export const INIT_DEFAULTS = {
  initializerRange: 0.02,
  timeStepMin: 0.001,
  timeStepMax: 0.1,
  timeStepFloor: 1e-4,
  timeStepScale: 1,
  rescalePrenormResidual: true,
} as const;

/**
 * The random draws of the reference initialisations, all from one seeded stream in the order they are
 * asked for: PyTorch's uniform U(±bound), normal N(0, std²), and the SSMs' dt bias softplus⁻¹(dt) with dt
 * log-uniform in [timeStepMin, timeStepMax], floored at timeStepFloor (softplus(bias) = dt).
 */
export function initDraws(
  rng: Rng,
  o: { timeStepMin: number; timeStepMax: number; timeStepFloor: number },
): {
  uniform: (n: number, bound: number) => Float32Array;
  normal: (n: number, std: number) => Float32Array;
  dtBias: (n: number) => Float32Array;
} {
  const lo = Math.log(o.timeStepMin),
    hi = Math.log(o.timeStepMax);
  return {
    uniform: (n, bound) => Float32Array.from({ length: n }, () => (2 * rng.uniform() - 1) * bound),
    normal: (n, std) => Float32Array.from({ length: n }, () => rng.normal() * std),
    dtBias: (n) =>
      Float32Array.from({ length: n }, () => {
        const dt = Math.max(Math.exp(rng.uniform() * (hi - lo) + lo), o.timeStepFloor);
        return dt + Math.log(-Math.expm1(-dt));
      }),
  };
}

/** Freshly initialised parameters by Hugging Face name, in the checkpoint's shapes (conv1d.weight (e, 1, k)). */
export function initMambaParameters(
  c: MambaConfig,
  o: InitOptions,
): Map<string, { shape: readonly number[]; data: Float32Array }> {
  const opt = { ...INIT_DEFAULTS, ...o };
  const out = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  const { uniform, normal, dtBias } = initDraws(new Rng(opt.seed), opt);
  const { e, n, k, r } = { e: c.dInner, n: c.dState, k: c.dConv, r: c.dtRank };
  for (const t of expectedMambaTensors(c)) {
    if (t.name === 'lm_head.weight' && c.tieEmbeddings) continue;
    const size = t.shape.reduce((a, b) => a * b, 1);
    const leaf = t.name.slice(t.name.lastIndexOf('mixer.') >= 0 ? t.name.lastIndexOf('mixer.') + 6 : 0);
    let data: Float32Array;
    if (t.name === 'backbone.embeddings.weight' || t.name === 'lm_head.weight')
      data = normal(size, opt.initializerRange);
    else if (t.name.endsWith('norm.weight') || t.name.endsWith('norm_f.weight')) data = new Float32Array(size).fill(1);
    else if (leaf === 'in_proj.weight' || leaf === 'x_proj.weight') data = uniform(size, 1 / Math.sqrt(t.shape[1]));
    else if (leaf === 'out_proj.weight')
      data = uniform(size, 1 / Math.sqrt(e) / (opt.rescalePrenormResidual ? Math.sqrt(c.nLayer) : 1));
    else if (leaf === 'in_proj.bias' || leaf === 'out_proj.bias') data = new Float32Array(size);
    else if (leaf === 'conv1d.weight' || leaf === 'conv1d.bias') data = uniform(size, 1 / Math.sqrt(k));
    else if (leaf === 'dt_proj.weight') data = uniform(size, r ** -0.5 * opt.timeStepScale);
    else if (leaf === 'dt_proj.bias') data = dtBias(e);
    else if (leaf === 'A_log') data = Float32Array.from({ length: e * n }, (_, i) => Math.log((i % n) + 1));
    else if (leaf === 'D') data = new Float32Array(e).fill(1);
    else throw new Error(`init: no rule for ${t.name}`);
    out.set(t.name, { shape: t.shape, data });
  }
  return out;
}

/** A new model on `backend` with the reference initialisation. */
export async function initMambaModel(c: MambaConfig, o: InitOptions, backend: Backend): Promise<LanguageModel> {
  return buildFromParameters(initMambaParameters(c, o), (src) => buildMamba(c, src, backend, 'f32'));
}

/**
 * A model from freshly initialised parameters (by checkpoint name, in the checkpoint's shapes), built by
 * the architecture's checkpoint loader from them as an in-memory safetensors file: a new model is made
 * the way a saved one is read back.
 */
export async function buildFromParameters(
  params: Map<string, { shape: readonly number[]; data: Float32Array }>,
  build: (src: TensorSource) => Promise<LanguageModel>,
): Promise<LanguageModel> {
  const bytes = encodeSafetensors(
    [...params].map(([name, p]) => ({ name, dtype: 'F32' as const, shape: p.shape, data: p.data })),
  );
  const src = await openSafetensors(memorySource(bytes, 'freshly initialised parameters'));
  try {
    return await build(src);
  } finally {
    await src.close();
  }
}
