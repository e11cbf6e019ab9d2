import { fail } from '../errors.js';
import type { Backend } from './backend.js';

/** The optional kernels of the contract that the mixers beyond Mamba need (S4D, H3, Hyena, attention). */
export type MixerKernel =
  | 'fftConv' | 'fftConvBackward' | 'ssmConvKernel' | 'ssmConvKernelBackward' | 'diagonalSsmScan'
  | 'attention' | 'attentionBackward' | 'rotary';

export const MIXER_KERNELS: readonly MixerKernel[] = ['fftConv', 'fftConvBackward', 'ssmConvKernel', 'ssmConvKernelBackward', 'diagonalSsmScan', 'attention', 'attentionBackward', 'rotary'];

/** The backend's kernel `k`, bound to it; UNSUPPORTED naming the kernel when the backend lacks it. */
export function requireMixerKernel<K extends MixerKernel>(bk: Backend, k: K): NonNullable<Backend[K]> {
  const f = bk[k] as ((...args: never[]) => void) | undefined;
  if (!f) fail('UNSUPPORTED', `the ${bk.name} backend has no ${k} kernel yet (needed by the S4D, H3, Hyena and attention mixers); use the cpu backend`, { backend: bk.name, kernel: k });
  return f.bind(bk) as NonNullable<Backend[K]>;
}

/** Which mixer kernels a backend lacks. */
export function missingMixerKernels(bk: Backend): MixerKernel[] {
  return MIXER_KERNELS.filter((k) => typeof bk[k] !== 'function');
}
