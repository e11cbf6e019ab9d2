import type { Backend } from '../backend/backend.js';
import { convWeight, linearBias, linearWeight, type Rng } from './init.js';
import type { MambaDims, MambaMixerWeights } from './mamba.js';
import { initS6 } from './s6.js';

/**
 * Fresh Mamba-1 mixer weights, as mamba_ssm initialises them (REFERENCE.md §1): PyTorch's Linear and
 * Conv1d defaults, dt_proj and A_log and D as S6's (s6.ts), no in/out_proj biases, and out_proj
 * divided by sqrt(n_layer) (`rescale_prenorm_residual`).
 */
export function initMambaMixer(bk: Backend, rng: Rng, dims: MambaDims, nLayer: number): MambaMixerWeights {
  const { d, e, n, k, r } = dims;
  const inProj = linearWeight(bk, rng, 2 * e, d);
  const cw = convWeight(bk, rng, e, k);
  const cb = linearBias(bk, rng, e, k);
  const s6 = initS6(bk, rng, e, n, r);
  return {
    inProj,
    inProjBias: null,
    convWeight: cw,
    convBias: cb,
    xProj: s6.xProj,
    dtProj: s6.dtProj,
    dtProjBias: s6.dtProjBias,
    ALog: s6.ALog,
    D: s6.D,
    outProj: linearWeight(bk, rng, d, e, 1 / Math.sqrt(nLayer)),
    outProjBias: null,
  };
}
