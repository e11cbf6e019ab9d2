// Layer 1 of the CPU backend, reference/: the TypeScript reference kernels, one per file, taking these
// views. They are the specification: the WebAssembly and WebGPU kernels are tested against them. Plain
// single-threaded code that may import only each other, the backend contract (../../backend.ts,
// ../../checks.ts), tensor/ and errors.ts: never runtime/, wasm/ or the CpuBackend assembly.

import type { DType } from '../../../tensor/dtype.js';

/** What a CPU kernel sees of a tensor: its typed array, first element, row stride and dtype. */
export interface View {
  data: Float32Array | Uint16Array | Int32Array;
  off: number;
  ld: number;
  dtype: DType;
}

/** A float view; `data` is Float32Array for f32, Uint16Array (bit patterns) for f16/bf16. */
export interface FView extends View {
  data: Float32Array | Uint16Array;
}
