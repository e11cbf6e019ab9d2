import type { Tensor } from '../../tensor/tensor.js';
import type { Dispatcher } from './dispatcher.js';
import type { GpuStorage } from './gpu-buffers.js';

/**
 * What the kernel launchers (kernels/*.ts) need from the backend, and no more: the launchers import
 * this, not the backend class, so the backend can import them without a cycle. `WebGpuBackend`
 * implements it.
 */
export interface KernelHost {
  /** Records the dispatches. */
  readonly d: Dispatcher;
  readonly options: Readonly<KernelOptions>;
  /** The GPU storage of a tensor of this backend (refuses another backend's tensor or a freed one). */
  buf(t: Tensor): GpuStorage;
  /** A scratch buffer of at least `bytes` from the pool; give it back with `release`. */
  scratch(bytes: number): GpuStorage;
  release(s: GpuStorage): void;
  /** Bound where a kernel's optional read-only input is absent. */
  readonly dummyR: GpuStorage;
  /** Bound where a kernel's optional output is absent (two: one buffer may be writable once per dispatch). */
  readonly dummyW: GpuStorage;
  readonly dummyW2: GpuStorage;
}

/** Mamba-2's SSD scan: step by step, chunked, or chosen from the length. */
export type SsdPath = 'auto' | 'sequential' | 'chunked';

/** The launchers' tuning options (`WebGpuBackendOptions` less the memory and batching ones). */
export interface KernelOptions {
  /** Chunk length of the parallel selective scan; 0 chooses from the shape (default). */
  scanChunk: number;
  /** Threads the chunked scan aims for (it picks the chunk length from this); 0 = default (2^17). */
  scanThreads: number;
  /** Channels per workgroup of the scan (32, 64, 128, 256); 0 = default (64). */
  scanWorkgroup: number;
  /** W rows per workgroup of the matrix-vector kernel (1, 2, 4, 8); 0 chooses from the shape (default). */
  matvecRows: number;
  /**
   * W words each thread of the matrix-vector kernel loads ahead on its 16-byte paths (matvec.wgsl `U`):
   * 4 (default) keeps four loads in flight per thread, 1 one at a time (the kernel before, for A/B runs).
   * The sums are the same either way.
   */
  matvecUnroll: 1 | 4;
  /** Output tile of the matrix product (64 or 128); 0 chooses from the shape (default). */
  matmulTile: number;
  /**
   * The matrix product tiles' form: true (default) keeps each thread's 8 x 8 (128 x 128 tile) or 4 x 4
   * (64 x 64 tile) block in named registers and prefetches the next k slice (matmul.wgsl `wide`,
   * `narrow`); false runs the loop form (`main`), for A/B runs.
   */
  matmulRegisters: boolean;
  /** Mamba-2's SSD scan: step by step, chunked, or chosen from the length (default 'auto': chunked past 16 steps). */
  ssdPath: SsdPath;
  /** Chunk length of the chunked SSD scan (any length >= 1; the result differs by rounding only); 0 = default (256). */
  ssdChunk: number;
  /**
   * Mamba-1's recurrent step takes the block's RMSNorm into in_proj and its residual add into out_proj
   * (`MambaStepArgs.preNorm`: 4 dispatches per layer instead of 5), and the hybrids' decode blocks their
   * fused products (`fusedLinear`: Mamba-2 in 3 dispatches, the SwiGLU MLP in 2, the final norm in
   * lm_head); default true. false keeps the separate kernels (for A/B measurements).
   */
  fuseNorm: boolean;
}
