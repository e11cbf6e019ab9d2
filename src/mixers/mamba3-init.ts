import type { Backend } from '../backend/backend.js';
import type { Mamba3Dims } from '../backend/contract/mamba3.js';
import { filled, linearWeight, type Rng } from './init.js';
import type { Mamba3MixerWeights } from './mamba3.js';

/**
 * Fresh Mamba-3 mixer weights, as mamba_ssm's Mamba3 initialises them: PyTorch's Linear default for in_proj
 * and out_proj (out_proj divided by sqrt(n_layer), `rescale_prenorm_residual`), dt_bias the inverse softplus
 * of dt ~ log-uniform in [dt_min 0.001, dt_max 0.1] (floored at 1e-4), B_bias = C_bias = 1, the B, C and
 * output norms' weights 1, D = 1, and for MIMO mimo_x = mimo_o = 1/R, mimo_z = 1.
 */
export function initMamba3Mixer(
  bk: Backend,
  rng: Rng,
  dims: Mamba3Dims & { d: number },
  o: { nLayer: number; outprojNorm: boolean; mimo: boolean },
): Mamba3MixerWeights {
  const { d, h, p, n, g, R, S } = dims;
  const e = h * p;
  const W = 2 * e + 2 * R * g * n + 3 * h + S;
  const [dtMin, dtMax, floor] = [0.001, 0.1, 1e-4];
  const dtBias = filled(bk, [h], () => {
    const dt = Math.max(floor, Math.exp(rng.uniform(Math.log(dtMin), Math.log(dtMax))));
    return dt + Math.log(-Math.expm1(-dt)); // softplus(dt_bias) = dt
  });
  const mimo = (v: number): Mamba3MixerWeights['mimoX'] => (o.mimo ? filled(bk, [h, R, p], () => v) : null);
  return {
    inProj: linearWeight(bk, rng, W, d),
    dtBias,
    BBias: filled(bk, [h, R, n], () => 1),
    CBias: filled(bk, [h, R, n], () => 1),
    BNorm: filled(bk, [n], () => 1),
    CNorm: filled(bk, [n], () => 1),
    D: filled(bk, [h], () => 1),
    mimoX: mimo(1 / R),
    mimoZ: mimo(1),
    mimoO: mimo(1 / R),
    normWeight: o.outprojNorm ? filled(bk, [e], () => 1) : null,
    outProj: linearWeight(bk, rng, d, e, 1 / Math.sqrt(o.nLayer)),
  };
}
