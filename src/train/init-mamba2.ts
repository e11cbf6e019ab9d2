import type { Backend } from '../backend/backend.js';
import { buildMamba2, expectedMamba2Tensors } from '../models/build-mamba2.js';
import type { Mamba2Config } from '../models/config.js';
import type { LanguageModel } from '../models/lm.js';
import { buildFromParameters, INIT_DEFAULTS, initDraws, type InitOptions } from './init.js';
import { Rng } from './rng.js';

/**
 * The reference initialisation of a new Mamba-2 model (mamba_ssm's `Mamba2.__init__` and
 * `mixer_seq_simple._init_weights`; transformers' `Mamba2PreTrainedModel._init_weights`), from a seed:
 *   embeddings            N(0, initializerRange²)                   (0.02)
 *   in_proj               PyTorch's Linear default: U(±1/√fan_in)
 *   out_proj              the same, divided by √n_layer             (rescale_prenorm_residual)
 *   linear biases         0
 *   conv1d weight, bias   PyTorch's Conv1d default: U(±1/√k)        (depthwise: fan_in = k)
 *   dt_bias               softplus⁻¹(dt) = dt + log(-expm1(-dt)),
 *                         dt = max(exp(U(0,1)(ln dtMax − ln dtMin) + ln dtMin), dtFloor)
 *   A_log                 log(U(1, 16)) per head                    (A_init_range)
 *   D = 1;  norms (the block's, the gated norm's, norm_f) = 1
 * lm_head (when not tied) is drawn like the embeddings.
 */
const A_INIT_RANGE = [1, 16] as const;

/** Freshly initialised parameters by Hugging Face name, in the checkpoint's shapes (conv1d.weight (c, 1, k)). */
export function initMamba2Parameters(
  c: Mamba2Config,
  o: InitOptions,
): Map<string, { shape: readonly number[]; data: Float32Array }> {
  const opt = { ...INIT_DEFAULTS, ...o };
  const rng = new Rng(opt.seed);
  const out = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  const { uniform, normal, dtBias } = initDraws(rng, opt);
  for (const t of expectedMamba2Tensors(c)) {
    if (t.name === 'lm_head.weight' && c.tieEmbeddings) continue;
    const size = t.shape.reduce((a, b) => a * b, 1);
    const at = t.name.lastIndexOf('mixer.');
    const leaf = at >= 0 ? t.name.slice(at + 6) : t.name;
    let data: Float32Array;
    if (t.name === 'backbone.embeddings.weight' || t.name === 'lm_head.weight')
      data = normal(size, opt.initializerRange);
    else if (t.name.endsWith('norm.weight') || t.name.endsWith('norm_f.weight')) data = new Float32Array(size).fill(1);
    else if (leaf === 'in_proj.weight') data = uniform(size, 1 / Math.sqrt(t.shape[1]));
    else if (leaf === 'out_proj.weight')
      data = uniform(size, 1 / Math.sqrt(c.dInner) / (opt.rescalePrenormResidual ? Math.sqrt(c.nLayer) : 1));
    else if (leaf === 'in_proj.bias' || leaf === 'out_proj.bias') data = new Float32Array(size);
    else if (leaf === 'conv1d.weight' || leaf === 'conv1d.bias') data = uniform(size, 1 / Math.sqrt(c.dConv));
    else if (leaf === 'dt_bias') data = dtBias(size);
    else if (leaf === 'A_log') {
      const [a0, a1] = A_INIT_RANGE;
      data = Float32Array.from({ length: size }, () => Math.log(a0 + (a1 - a0) * rng.uniform()));
    } else if (leaf === 'D') data = new Float32Array(size).fill(1);
    else throw new Error(`init: no rule for ${t.name}`);
    out.set(t.name, { shape: t.shape, data });
  }
  return out;
}

/** A new Mamba-2 model on `backend` with the reference initialisation. */
export async function initMamba2Model(c: Mamba2Config, o: InitOptions, backend: Backend): Promise<LanguageModel> {
  return buildFromParameters(initMamba2Parameters(c, o), (src) => buildMamba2(c, src, backend, 'f32'));
}
