import type { Backend } from '../backend/backend.js';
import { convWeight, filled, linearBias, linearWeight, type Rng } from './init.js';
import type { Mamba2Dims, Mamba2MixerWeights } from './mamba2.js';

/**
 * Fresh Mamba-2 mixer weights for models built from scratch (the task models), as mamba_ssm's Mamba2
 * initialises them (the same rules as `src/train/init-mamba2.ts`, which builds whole checkpoints):
 * PyTorch's Linear default for in_proj and out_proj (out_proj divided by sqrt(n_layer),
 * `rescale_prenorm_residual`), Conv1d's default for the conv weight and bias, dt_bias the inverse
 * softplus of dt ~ log-uniform in [0.001, 0.1] (floored at 1e-4), A_log = log U(1, 16), D = 1, the
 * gated norm's weight 1, no in/out_proj biases.
 */
export function initMamba2Mixer(bk: Backend, rng: Rng, dims: Mamba2Dims, nLayer: number): Mamba2MixerWeights {
  const { d, h, p, g, n, k } = dims;
  const e = h * p,
    c = e + 2 * g * n;
  const [dtMin, dtMax, floor] = [0.001, 0.1, 1e-4];
  return {
    inProj: linearWeight(bk, rng, 2 * e + 2 * g * n + h, d),
    inProjBias: null,
    convWeight: convWeight(bk, rng, c, k),
    convBias: linearBias(bk, rng, c, k),
    dtBias: filled(bk, [h], () => {
      const dt = Math.max(floor, Math.exp(rng.uniform(Math.log(dtMin), Math.log(dtMax))));
      return dt + Math.log(-Math.expm1(-dt)); // softplus(dt_bias) = dt
    }),
    ALog: filled(bk, [h], () => Math.log(rng.uniform(1, 16))),
    D: filled(bk, [h], () => 1),
    normWeight: filled(bk, [e], () => 1),
    outProj: linearWeight(bk, rng, d, e, 1 / Math.sqrt(nLayer)),
    outProjBias: null,
  };
}
