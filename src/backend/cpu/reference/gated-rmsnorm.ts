import { silu } from './math.js';
import type { FView } from './view.js';

/**
 * Gated RMSNorm of Mamba-2 (contract in backend/contract/), rows of width e in groups of `groupSize`:
 *   gate first: v = x ⊙ silu(z), out = v · rsqrt(mean_group(v²) + eps) ⊙ weight
 *               (transformers' MambaRMSNormGated; mamba_ssm's RMSNormGated with norm_before_gate=False)
 *   norm first: out = x · rsqrt(mean_group(x²) + eps) ⊙ weight ⊙ silu(z)   (norm_before_gate=True)
 * transformers normalises over all of e (one group); mamba_ssm over e / n_groups (group_size), which mamba-ts
 * uses for every layout (transformers#40861).
 * Sums in f64.
 */
let scratch = new Float64Array(0);

export function gatedRmsnorm(
  out: FView,
  x: FView,
  z: FView | null,
  weight: FView,
  m: number,
  e: number,
  groupSize: number,
  eps: number,
  normBeforeGate: boolean,
): void {
  const O = out.data as Float32Array,
    X = x.data as Float32Array,
    W = weight.data as Float32Array;
  const Z = z ? (z.data as Float32Array) : null;
  if (scratch.length < 2 * groupSize) scratch = new Float64Array(2 * groupSize);
  const v = scratch.subarray(0, groupSize),
    gate = scratch.subarray(groupSize, 2 * groupSize);
  for (let r = 0; r < m; r++) {
    const xo = x.off + r * x.ld,
      oo = out.off + r * out.ld,
      zo = z ? z.off + r * z.ld : 0;
    for (let g0 = 0; g0 < e; g0 += groupSize) {
      let ss = 0;
      for (let j = 0; j < groupSize; j++) {
        const gj = Z ? silu(Z[zo + g0 + j]) : 1;
        gate[j] = gj;
        const vj = normBeforeGate ? X[xo + g0 + j] : X[xo + g0 + j] * gj;
        v[j] = vj;
        ss += vj * vj;
      }
      const inv = 1 / Math.sqrt(ss / groupSize + eps);
      const wo = weight.off + g0;
      for (let j = 0; j < groupSize; j++) {
        const y = v[j] * inv * W[wo + j];
        O[oo + g0 + j] = normBeforeGate ? y * gate[j] : y;
      }
    }
  }
}
