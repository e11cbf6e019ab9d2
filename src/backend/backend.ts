import type { Tensor } from '../tensor/tensor.js';
import type { DecodeKernels } from './contract/decode.js';
import type { InferenceKernels } from './contract/inference.js';
import type { BackendMemory } from './contract/memory.js';
import type { MixerKernels } from './contract/mixers.js';
import type { MoeTrainKernels } from './contract/moe-train.js';
import type { TrainingKernels } from './contract/training.js';

/**
 * The contract every backend implements: memory (alloc, upload, read, free) and the kernels the models
 * need. Kernels write into tensors the caller passes (`out`), so hot loops can reuse buffers; the
 * functional layer (`ops/`) allocates outputs for the parallel form and for autograd.
 *
 * All float math is f32 (the CPU reference computes in f64 registers and rounds on store). Inputs may
 * be views (`Tensor.narrow`): a kernel reads row `r` of `t` at `t.offset + r * t.ld`. Weight inputs
 * marked "any float" may be f32, f16 or bf16 storage. The CPU backend is the specification: each kernel
 * in `cpu/` states its math, and every other backend is tested against it.
 *
 * The parts, by concern, each in `contract/` with its kernels' argument types and shape checks:
 *   memory.ts     tensors in and out, copy, fill (every backend)
 *   inference.ts  the forward and recurrent-step kernels of Mamba and Mamba-2 (every backend)
 *   decode.ts     optional: device sampling, the fused Mamba-1 step, recorded replay
 *   training.ts   optional: reductions, losses, backward kernels, AdamW
 *   mixers.ts     optional: the kernels of S4D, H3, Hyena and attention
 *
 * Glossary: b batch, l sequence length, d d_model, e d_inner, n d_state, k conv width, V vocab,
 * m/n/p generic matrix sizes; for Mamba-2 (SSD) also h heads, p head_dim (e = h·p), g n_groups,
 * Q chunk length.
 */
export interface Backend
  extends BackendMemory, InferenceKernels, DecodeKernels, TrainingKernels, MixerKernels, MoeTrainKernels {}

/**
 * The backend that owns `t`, with all its kernels. A Tensor knows its owner only as a `TensorOwner`
 * (the tensor layer cannot name `Backend`); every tensor is made by a backend, so the owner is one.
 */
export function backendOf(t: Tensor): Backend {
  return t.backend as Backend;
}
