import { fail } from '../errors.js';
import { type ConfigReader, limitPair } from './config-reader.js';

/**
 * The `mamba_*` keys of a hybrid's Mamba-2 part (Granite 4.0-H, Bamba, Falcon-H1 name them alike), for a
 * Mamba width `dInner` that each model derives its own way (`widthFrom` names it and its value, for the error message):
 * heads of mamba_d_head (or "auto": dInner / heads), groups, state, conv, chunk, biases, dt limits, and the
 * gated norm over each group's columns.
 */
export function mamba2Keys(r: ConfigReader, dInner: number, widthFrom: string) {
  const nHeads = r.int('mamba_n_heads', 128);
  const raw = r.raw.mamba_d_head;
  const dHead = raw === 'auto' || raw === undefined || raw === null ? dInner / nHeads : r.int('mamba_d_head');
  if (!Number.isInteger(dHead) || dHead * nHeads !== dInner)
    fail('CORRUPT_FILE', `${r.where}: mamba_n_heads ${nHeads} x mamba_d_head ${dHead} must equal ${widthFrom}`);
  const nGroups = r.int('mamba_n_groups', 1);
  return {
    nHeads,
    headDim: dHead,
    nGroups,
    dState: r.int('mamba_d_state', 256),
    dConv: r.int('mamba_d_conv', 4),
    chunkSize: r.int('mamba_chunk_size', 256),
    dInner,
    useBias: r.bool('mamba_proj_bias', false),
    useConvBias: r.bool('mamba_conv_bias', true),
    timeStepLimit: limitPair(r, 'time_step_limit', [0, Infinity]),
    normGroupSize: dInner / nGroups,
  };
}
