import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';

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
 * Glossary: b batch, l sequence length, d d_model, e d_inner, n d_state, k conv width, V vocab,
 * m/n/p generic matrix sizes.
 */
export interface Backend {
  readonly name: string;

  // ---- memory --------------------------------------------------------------------------------------
  /** A new contiguous tensor; contents unspecified. */
  alloc(shape: readonly number[], dtype?: DType): Tensor;
  /** A new contiguous tensor of zeros. */
  zeros(shape: readonly number[], dtype?: DType): Tensor;
  /** A new tensor holding `data` (f16/bf16 given as their bit patterns in a Uint16Array; q8 given as f32 and quantised). */
  upload(data: Float32Array | Uint16Array | Int32Array, shape: readonly number[], dtype?: DType): Tensor;
  /** All elements, contiguous; floats as f32 whatever the storage. */
  read(t: Tensor): Promise<Float32Array | Int32Array>;
  /** Releases the storage of an owning tensor (no-op on the CPU). */
  free(t: Tensor): void;
  /** Waits for queued work (no-op on the CPU). */
  sync(): Promise<void>;

  // ---- kernels -------------------------------------------------------------------------------------
  /** dst <- src, same shape; src any float dtype or i32 (i32 -> i32 only), dst f32 or matching. */
  copy(dst: Tensor, src: Tensor): void;
  /** t <- value everywhere. */
  fill(t: Tensor, value: number): void;

  /**
   * out (m, p) <- [out +] op(a) · op(b) [+ bias]; op(a) is (m, q), op(b) is (q, p).
   * `transA`: a is stored (q, m). `transB`: b is stored (p, q) — the layout of a PyTorch Linear weight,
   * so `Linear(x) = matmul(out, x, W, {transB: true, bias})`. b (and a) may be any float dtype.
   */
  matmul(out: Tensor, a: Tensor, b: Tensor, opts?: MatmulOptions): void;

  /** out (m, d) <- table[ids] ; ids (m) i32 in [0, V) (checked by the caller), table (V, d) any float. */
  embedding(out: Tensor, ids: Tensor, table: Tensor): void;

  /**
   * Fused residual add + RMSNorm over rows of width d:
   *   if x: residual <- residual + x   (in place; the residual stream)
   *   out <- residual * rsqrt(mean(residual^2) + eps) * weight
   * residual, x, out (m, d); weight (d).
   */
  addRmsnorm(out: Tensor, residual: Tensor, x: Tensor | null, weight: Tensor, eps: number): void;

  /**
   * Causal depthwise conv1d along l with optional SiLU, carrying a state:
   *   window_t = [the k-1 inputs before t, x_t]    (before t = 0: state's last k-1 columns, or zeros)
   *   out[b,t,c] = act(sum_j window_t[j] * weight[c,j] + bias[c])
   * and, when a state is given, state <- the last k inputs (oldest first), as in HF's conv_states.
   * x, out (b, l, e); weight (e, k); bias (e) or null; state (b, e, k) or null.
   * With l = 1 and a state this is the recurrent step.
   */
  causalConv1d(out: Tensor, x: Tensor, weight: Tensor, bias: Tensor | null, state: Tensor | null, silu: boolean): void;

  /** The selective scan, fused (discretise, recur, contract with C, D skip, SiLU(z) gate). */
  selectiveScan(a: SelectiveScanArgs): void;

  /** Elementwise `out <- f(x)`; out and x the same shape. */
  unary(op: UnaryOp, out: Tensor, x: Tensor): void;
  /** Elementwise `out <- a (op) b`; b the same shape as a, or one row (cols) broadcast over a's rows. */
  binary(op: BinaryOp, out: Tensor, a: Tensor, b: Tensor): void;

  /** out (b) i32 <- index of the largest element of each row of x (b, V); the first one on ties. */
  argmax(out: Tensor, x: Tensor): void;
}

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor | null;
  /** Add into `out` instead of overwriting it. */
  accumulate?: boolean;
}

export type UnaryOp = 'silu' | 'softplus' | 'exp' | 'neg' | 'negexp' | 'relu' | 'gelu' | 'sigmoid' | 'tanh' | 'square' | 'sqrt' | 'log';
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';

/**
 * Arguments of the selective scan (Mamba-1's S6), REFERENCE.md §1:
 *   dt_t  = softplus(delta_t + deltaBias)           if deltaSoftplus, else delta_t + deltaBias
 *   h_t   = exp(dt_t * A) * h_{t-1} + (dt_t * B_t) * u_t      h (b, e, n)
 *   y_t   = sum_n h_t * C_t + D * u_t
 *   y_t   = y_t * silu(z_t)                          if z
 * u, delta, z, y (b, l, e); B, C (b, l, n) (views into x_proj's output are fine); A (e, n);
 * D, deltaBias (e); h0 (b, e, n) initial state or null for zeros; hOut (b, e, n) receives h_l, or null.
 * h0 and hOut may be the same tensor (the recurrent step: l = 1).
 */
export interface SelectiveScanArgs {
  y: Tensor;
  u: Tensor;
  delta: Tensor;
  A: Tensor;
  B: Tensor;
  C: Tensor;
  D: Tensor | null;
  z: Tensor | null;
  deltaBias: Tensor | null;
  deltaSoftplus: boolean;
  h0: Tensor | null;
  hOut: Tensor | null;
}
