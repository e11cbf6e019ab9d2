import type { Backend } from '../backend/backend.js';
import { buildMamba3, expectedMamba3Tensors } from '../models/build-mamba3.js';
import type { Mamba3Config } from '../models/config.js';
import type { LanguageModel } from '../models/lm.js';
import { buildFromParameters, INIT_DEFAULTS, initDraws, type InitOptions } from './init.js';
import { Rng } from './rng.js';

/**
 * The reference initialisation of a new Mamba-3 language model (mamba_ssm's `Mamba3.__init__` and
 * `mixer_seq_simple._init_weights`), from a seed, tensor by tensor in the checkpoint's names and shapes:
 *   embeddings (and an untied lm_head)   N(0, initializerRange²)                      (0.02)
 *   in_proj                              PyTorch's Linear default: U(±1/√d_model)
 *   out_proj                             the same (fan-in d_inner), divided by √n_layer (rescale_prenorm_residual)
 *   dt_bias                              softplus⁻¹(dt), dt log-uniform in [dt_min 0.001, dt_max 0.1], floored at 1e-4
 *                                        (INIT_DEFAULTS' time-step range, mamba_ssm's Mamba3 defaults)
 *   B_bias = C_bias = 1; the B, C, output and block norms' weights = 1; D = 1
 *   MIMO: mimo_x = mimo_o = 1/R, mimo_z = 1
 * (the mixer-level rules are those of src/mixers/mamba3-init.ts, which the task models use).
 */
export function initMamba3Parameters(
  c: Mamba3Config,
  o: InitOptions,
): Map<string, { shape: readonly number[]; data: Float32Array }> {
  const opt = { ...INIT_DEFAULTS, ...o };
  const out = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  const { uniform, normal, dtBias } = initDraws(new Rng(opt.seed), opt);
  const fill = (n: number, v: number): Float32Array => new Float32Array(n).fill(v);
  for (const t of expectedMamba3Tensors(c)) {
    if (t.name === 'lm_head.weight' && c.tieEmbeddings) continue;
    const size = t.shape.reduce((a, b) => a * b, 1);
    const at = t.name.lastIndexOf('mixer.');
    const leaf = at >= 0 ? t.name.slice(at + 6) : t.name;
    let data: Float32Array;
    if (t.name === 'backbone.embeddings.weight' || t.name === 'lm_head.weight')
      data = normal(size, opt.initializerRange);
    else if (leaf === 'in_proj.weight') data = uniform(size, 1 / Math.sqrt(c.dModel));
    else if (leaf === 'out_proj.weight')
      data = uniform(size, 1 / Math.sqrt(c.dInner) / (opt.rescalePrenormResidual ? Math.sqrt(c.nLayer) : 1));
    else if (leaf === 'dt_bias') data = dtBias(size);
    else if (leaf === 'mimo_x' || leaf === 'mimo_o') data = fill(size, 1 / c.mimoRank);
    else if (
      leaf === 'B_bias' ||
      leaf === 'C_bias' ||
      leaf === 'D' ||
      leaf === 'mimo_z' ||
      t.name.endsWith('norm.weight') ||
      t.name.endsWith('norm_f.weight')
    )
      data = fill(size, 1);
    else throw new Error(`init: no rule for ${t.name}`);
    out.set(t.name, { shape: t.shape, data });
  }
  return out;
}

/** A new Mamba-3 model on `backend` with the reference initialisation. */
export async function initMamba3Model(c: Mamba3Config, o: InitOptions, backend: Backend): Promise<LanguageModel> {
  return buildFromParameters(initMamba3Parameters(c, o), (src) => buildMamba3(c, src, backend, 'f32'));
}
