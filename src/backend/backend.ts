import type { SamplingParams } from './sampling.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor, TensorOwner } from '../tensor/tensor.js';

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
 * m/n/p generic matrix sizes; for Mamba-2 (SSD) also h heads, p head_dim (e = h·p), g n_groups,
 * Q chunk length.
 */
export interface Backend extends TensorOwner {
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

  /**
   * Mamba-2's SSD scan, fused: dt = clamp(softplus(dt + dtBias)), per head h_t = exp(dt·A)·h_{t-1} +
   * dt·x_t ⊗ B_t, y_t = h_t·C_t + D·x_t; computed in chunks of Q (any Q gives the same y up to rounding).
   */
  ssdScan(a: SsdScanArgs): void;

  /**
   * Gated RMSNorm over groups of `groupSize` columns (rows of width e = groups · groupSize):
   *   gate first (normBeforeGate false): out = rmsnorm_group(x ⊙ silu(z)) ⊙ weight
   *   norm first (normBeforeGate true):  out = rmsnorm_group(x) ⊙ weight ⊙ silu(z)
   * rmsnorm_group(v) = v · rsqrt(mean over the group of v² + eps). x, z, out (m, e); weight (e) f32;
   * z null: no gate. out must not overlap x or z.
   */
  gatedRmsnorm(out: Tensor, x: Tensor, z: Tensor | null, weight: Tensor, o: GatedRmsnormOptions): void;

  /** Elementwise `out <- f(x)`; out and x the same shape. */
  unary(op: UnaryOp, out: Tensor, x: Tensor): void;
  /** Elementwise `out <- a (op) b`; b the same shape as a, or one row (cols) broadcast over a's rows. */
  binary(op: BinaryOp, out: Tensor, a: Tensor, b: Tensor): void;

  /** out (b) i32 <- index of the largest element of each row of x (b, V); the first one on ties. */
  argmax(out: Tensor, x: Tensor): void;

  // ---- optional ------------------------------------------------------------------------------------
  /**
   * Samples one token per row with exactly the semantics of `Sampler` (generate/sampling.ts), where
   * the data lives: on a GPU the logits are never read back and the ids can feed the next step.
   * The CPU backend implements it with `Sampler` itself (the reference).
   */
  sample?(a: SampleArgs): void;
  /**
   * Mamba-1's recurrent step for one layer, fused (fewer dispatches per token). Same result as the
   * composition of kernels in `MambaMixer.step`, which is the reference and runs where this is absent.
   * Returns false, having done nothing, when asked for a fusion it does not do (`a.preNorm` where it
   * is off); without `preNorm` it always runs and returns true.
   */
  mambaStep?(a: MambaStepArgs): boolean;
  /**
   * Runs `fn` once (its kernels are queued as usual) and records the kernels it launches, so that
   * `replay()` launches them again, on the same tensors with the same parameters, with no host work
   * in between (CUDA graphs' idea). Only GPU work repeats: host-side effects of `fn` (counters such
   * as `ModelState.position`) do not. The tensors `fn` uses must outlive the recording.
   */
  record?(fn: () => void): RecordedWork;
  /** Releases the device (GPU backends); the backend is unusable afterwards. */
  dispose?(): void;

  // ---- training: reductions, losses, backward kernels, optimiser (docs/autograd.md) ---------------
  // Optional: a backend without them runs inference only, and the ops that need one throw UNSUPPORTED
  // naming it (`requireKernel`, training-kernels.ts), so a backend can gain them one at a time.
  // Every backward kernel overwrites its outputs (the autograd engine accumulates), reads the forward's
  // inputs again instead of saved intermediates where that is cheap, and accumulates in f64 on the CPU.

  /**
   * Column reduction over rows: out[j] <- [out[j] +] sum_i f(x[i, j]), f = identity ('sum') or
   * square ('sumSquares'). x (m, p); out (p) (any shape of p elements). Bias gradients, broadcast
   * gradients, gradient norms.
   */
  reduceRows?(op: ReduceOp, out: Tensor, x: Tensor, accumulate?: boolean): void;

  /**
   * Gradient of an elementwise function: dx <- g * f'(x), with y = f(x) from the forward (some
   * derivatives are cheaper from y: exp, sigmoid, tanh, sqrt). dx, g, x, y the same shape.
   */
  unaryBackward?(op: UnaryOp, dx: Tensor, g: Tensor, x: Tensor, y: Tensor): void;

  /** Scatter-add, the gradient of `embedding`: dTable[ids[i]] += g[i]. dTable (V, d) f32 (not cleared); ids (m); g (m, d). */
  embeddingBackward?(dTable: Tensor, ids: Tensor, g: Tensor): void;

  /**
   * Gradient of out = x * rsqrt(mean(x^2) + eps) * weight over rows of width d (no residual):
   *   inv = rsqrt(mean(x^2) + eps),  gw = g * weight
   *   dx  = inv * gw - x * inv^3 * mean(gw * x)
   *   dWeight[c] = sum over rows of g * x * inv
   * dx, g, x (m, d); weight, dWeight (d).
   */
  rmsnormBackward?(dx: Tensor, dWeight: Tensor, g: Tensor, x: Tensor, weight: Tensor, eps: number): void;

  /**
   * Gradient of `causalConv1d` without a state (zeros before t = 0). With s the pre-activation
   * (recomputed) and gs = g * silu'(s) (or g without SiLU):
   *   dx[b,t,c] = sum_j gs[b, t+k-1-j, c] * weight[c,j]    (terms past the end are zero)
   *   dWeight[c,j] = sum_{b,t} gs[b,t,c] * x[b, t-k+1+j, c];  dBias[c] = sum_{b,t} gs[b,t,c]
   * dx, g, x (b, l, e); weight, dWeight (e, k); bias, dBias (e) or null (both or neither).
   */
  causalConv1dBackward?(a: CausalConv1dBackwardArgs): void;

  /**
   * Gradient of `selectiveScan` (the math is in cpu/selective-scan-backward.ts). The states h_t are
   * not stored by the forward: the kernel recomputes them from the inputs chunk by chunk (states at
   * chunk starts first, then each chunk again in reverse order), so its extra memory is
   * O(b·e·n·(l/chunk + chunk)), not O(b·e·n·l).
   */
  selectiveScanBackward?(a: SelectiveScanBackwardArgs): void;

  /**
   * Cross-entropy of rows of logits against target ids, targets < 0 ignored (PyTorch's ignore_index):
   *   nll_i = logsumexp(logits[i]) - logits[i, targets[i]]
   *   out (1) <- sum_i nll_i ('sum') or that over the number of rows with a target ('mean'; 0 if none)
   * logits (m, V); targets (m) i32 < V (an id >= V is TOKEN_OUT_OF_RANGE).
   */
  crossEntropy?(out: Tensor, logits: Tensor, targets: Tensor, reduction: LossReduction): void;

  /**
   * Its gradient: dLogits[i] <- g[0] * s * (softmax(logits[i]) - onehot(targets[i])), zero rows for
   * ignored targets; s = 1 ('sum') or 1 / (rows with a target) ('mean'). g (1) is dL/d(out).
   */
  crossEntropyBackward?(dLogits: Tensor, logits: Tensor, targets: Tensor, g: Tensor, reduction: LossReduction): void;

  /**
   * One AdamW step in place (Loshchilov & Hutter, decoupled weight decay; PyTorch's torch.optim.AdamW):
   *   g = grad * gradScale;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
   *   p <- p * (1 - lr * weightDecay)
   *   p <- p - lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
   * param, grad, m, v the same shape, f32; step counts from 1.
   */
  adamwStep?(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWStepOptions): void;

  // ---- other sequence mixers: S4D, H3, Hyena, attention (src/mixers/, docs/mixers.md) -------------
  // Optional like the training kernels: a backend without them runs Mamba, and a mixer that needs one
  // throws UNSUPPORTED naming it (`requireMixerKernel`, mixer-kernels.ts). Backward kernels overwrite
  // their outputs.

  /**
   * Causal long convolution along l, one filter per channel, by FFT (the convolution mode of S4D,
   * H3's diagonal SSM and Hyena):
   *   y[b,t,c] = sum_{j<=t} K[t-j, c] · u[b,j,c]
   * computed as irfft(rfft(u, n) · rfft(K, n))[:l] with n >= 2l (zero padding makes it linear).
   * y, u (b, l, e); K (lk, e) with lk >= l (taps at lags >= l are never reached).
   */
  fftConv?(y: Tensor, u: Tensor, K: Tensor): void;

  /**
   * Gradient of `fftConv` (both correlations, by FFT):
   *   du[b,j,c] = sum_{t>=j} K[t-j, c] · g[b,t,c]      dK[m,c] = sum_{b,t} g[b,t,c] · u[b,t-m,c]
   * du, g, u (b, l, e); dK, K (lk, e) (rows >= l of dK are zero).
   */
  fftConvBackward?(du: Tensor, dK: Tensor, g: Tensor, u: Tensor, K: Tensor): void;

  /**
   * The convolution kernel of a diagonal LTI SSM under zero-order hold (S4D; REFERENCE.md §4):
   *   K[l, c] = scale · Re( sum_n C[c,n] · (exp(dt_c·A[c,n]) − 1) / A[c,n] · exp(l · dt_c·A[c,n]) )
   * A = ARe + i·AIm, C = CRe + i·CIm (B folded into C); scale 2 counts the conjugate pair of each mode
   * (S4D-Lin), 1 for real modes (S4D-Real, AIm = CIm = 0). K (L, e); dt (e) > 0; A*, C* (e, N).
   */
  ssmConvKernel?(a: SsmConvKernelArgs): void;

  /**
   * Gradient of `ssmConvKernel` with respect to dt, ARe, AIm, CRe, CIm (the complex chain rule is in
   * cpu/ssm-conv-kernel.ts); g (L, e) is dL/dK. Each output has its input's shape.
   */
  ssmConvKernelBackward?(a: SsmConvKernelBackwardArgs): void;

  /**
   * The same SSM run as a recurrence (the recurrent mode; not differentiated):
   *   h_t = Ē ⊙ h_{t−1} + B̄ · u_t,   Ē = exp(dt·A),  B̄ = (Ē − 1)/A      h complex (b, e, N)
   *   y_t = scale · Re(sum_n C_n · h_t,n) + D · u_t
   * y, u (b, l, e); state (b, e, 2N) holds h as [Re h_0..Re h_N−1, Im h_0..Im h_N−1] per channel:
   * read as h_0 and overwritten with h_l (zeros and discarded when null). With l = 1: the step.
   */
  diagonalSsmScan?(a: DiagonalSsmScanArgs): void;

  /**
   * Causal multi-head softmax attention (heads H, head widths dk for q/k, dv for v):
   *   query i of a sequence sits at position p_i = keys − lq + i and attends to keys j <= p_i:
   *   out[b,i,h] = sum_j softmax_j(scale · q[b,i,h] · k[b,j,h]) · v[b,j,h]
   * q (b, lq, H·dk); k (b, lk, H·dk); v (b, lk, H·dv); out (b, lq, H·dv); keys <= lk (default lk) is
   * how many key rows of each sequence are filled (a KV cache), keys >= lq. Softmax in f64 with the
   * row maximum subtracted. q, k, v may be views (columns of one qkv projection).
   */
  attention?(a: AttentionArgs): void;

  /**
   * Gradient of `attention` with keys = lk = lq (training), recomputing the probabilities row by row
   * (no (l, l) matrix is stored): with P the softmax, dP = g·vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)):
   *   dq = scale · dS·k,  dk = scale · dSᵀ·q,  dv = Pᵀ·g    (per sequence and head)
   */
  attentionBackward?(a: AttentionBackwardArgs): void;

  /**
   * Rotary position embedding (Su et al. 2021, GPT-NeoX's half-split layout): in each head of width
   * dh, the pair (x_i, x_{i+dh/2}), i < dh/2, at position p is rotated by the angle p·base^(−2i/dh):
   *   out_i = x_i cos θ − x_{i+dh/2} sin θ,   out_{i+dh/2} = x_i sin θ + x_{i+dh/2} cos θ
   * Row t of each sequence has position start + t. `inverse` rotates by −θ (the gradient: a rotation's
   * transpose is its inverse). x, out (b, l, H·dh) (out may be x); dh even.
   */
  rotary?(out: Tensor, x: Tensor, o: RotaryOptions): void;
}

/**
 * The backend that owns `t`, with all its kernels. A Tensor knows its owner only as a `TensorOwner`
 * (the tensor layer cannot name `Backend`); every tensor is made by a backend, so the owner is one.
 */
export function backendOf(t: Tensor): Backend {
  return t.backend as Backend;
}

export interface SsmParams {
  /** dt (e), positive (the mixers pass exp(log_dt)). */
  dt: Tensor;
  ARe: Tensor;
  AIm: Tensor;
  CRe: Tensor;
  CIm: Tensor;
  /** 2: each mode stands for a conjugate pair (S4D-Lin); 1: real modes (S4D-Real). */
  scale: number;
}

export interface SsmConvKernelArgs extends SsmParams {
  K: Tensor;
}

export interface SsmConvKernelBackwardArgs extends SsmParams {
  g: Tensor;
  dDt: Tensor;
  dARe: Tensor;
  dAIm: Tensor;
  dCRe: Tensor;
  dCIm: Tensor;
}

export interface DiagonalSsmScanArgs extends SsmParams {
  y: Tensor;
  u: Tensor;
  D: Tensor | null;
  state: Tensor | null;
}

export interface AttentionArgs {
  out: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  heads: number;
  scale: number;
  /** Key rows of each sequence in use (default: all lk). */
  keys?: number;
}

export interface AttentionBackwardArgs {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
  g: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  heads: number;
  scale: number;
}

export interface RotaryOptions {
  headDim: number;
  /** Position of row 0 of each sequence. */
  start: number;
  /** Frequency base (10000 in RoFormer, GPT-NeoX, Llama). */
  base: number;
  inverse?: boolean;
}

/** Kernels recorded by `Backend.record`. */
export interface RecordedWork {
  readonly dispatches: number;
  replay(): void;
  dispose(): void;
}

/** Arguments of `Backend.sample`. */
export interface SampleArgs {
  /** (b) i32: receives the chosen ids. */
  out: Tensor;
  /** (b, V) f32 logits (a view is fine). */
  logits: Tensor;
  params: SamplingParams;
  /** Generation step; with the row index it keys the random draw (`uniform(seed, row, step)`). */
  step: number;
  /**
   * (2) i32 `[step, 0]`: when given, the step is read from element 0 (not `step`) and incremented
   * after the draw, so recorded sampling advances by itself; element 1 must stay 0 (the kernel
   * counts finished rows there and resets it).
   */
  stepCounter?: Tensor | null;
  /**
   * (b, V) i32 presence mask of the tokens already in each sequence (nonzero = seen), for the
   * repetition penalty; the chosen ids are marked in it. Null: no penalty and nothing recorded.
   */
  seen?: Tensor | null;
  /** (V) i32: ids with a nonzero entry are never chosen (their logits count as -infinity). */
  suppress?: Tensor | null;
}

/**
 * Arguments of `Backend.mambaStep` (glossary of mixers/mamba.ts: b batch, d d_model, e d_inner,
 * n d_state, k d_conv, r dt_rank). Weights as in `MambaMixerWeights`, with A = -exp(A_log).
 */
export interface MambaStepArgs {
  /** (b, d) input (the normed residual; with `preNorm`, the residual stream itself). */
  x: Tensor;
  /** (b, d) receives out_proj(y) (with `preNorm`, out_proj(y) is added into it). */
  out: Tensor;
  /**
   * The residual block around the mixer, fused: the mixer's input is rmsnorm(x) · weight =
   * x · rsqrt(mean(x²) + eps) · weight (weight (d), any float) and out <- out + out_proj(y), so with
   * out = x (the residual stream) one call is the whole block: x <- x + mixer(rmsnorm(x) · weight).
   */
  preNorm?: { weight: Tensor; eps: number } | null;
  inProj: Tensor; inProjBias: Tensor | null;
  convWeight: Tensor; convBias: Tensor | null;
  xProj: Tensor; dtProj: Tensor; dtProjBias: Tensor;
  A: Tensor; D: Tensor;
  outProj: Tensor; outProjBias: Tensor | null;
  /** (b, e, k) and (b, e, n) recurrent states, advanced in place. */
  conv: Tensor; ssm: Tensor;
  /** Scratch the caller keeps (contents unspecified afterwards): xz (b, 2e), dbc (b, r + 2n), y (b, e). */
  xz: Tensor; dbc: Tensor; y: Tensor;
  dtRank: number;
}

export type ReduceOp = 'sum' | 'sumSquares';
export type LossReduction = 'mean' | 'sum';

export interface CausalConv1dBackwardArgs {
  dx: Tensor;
  dWeight: Tensor;
  dBias: Tensor | null;
  g: Tensor;
  x: Tensor;
  weight: Tensor;
  bias: Tensor | null;
  silu: boolean;
}

/**
 * Arguments of the selective scan's gradient: the forward's inputs (as in SelectiveScanArgs, without
 * y and hOut), dy = dL/dy, and one output per input, each overwritten: du, dDelta (b, l, e); dA (e, n);
 * dB, dC (b, l, n); dD, dDeltaBias (e) where D, deltaBias are given; dz where z is; dh0 (b, e, n) where
 * h0 is (null there: not wanted). `chunk`: length of the recompute chunks (default 64).
 */
export interface SelectiveScanBackwardArgs extends Omit<SelectiveScanArgs, 'y' | 'hOut'> {
  dy: Tensor;
  du: Tensor;
  dDelta: Tensor;
  dA: Tensor;
  dB: Tensor;
  dC: Tensor;
  dD: Tensor | null;
  dz: Tensor | null;
  dDeltaBias: Tensor | null;
  dh0: Tensor | null;
  chunk?: number;
}

export interface AdamWStepOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number, for the bias corrections. */
  step: number;
  /** Multiplies the gradient first (gradient clipping by global norm; loss scaling). Default 1. */
  gradScale?: number;
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

/**
 * Arguments of Mamba-2's SSD scan (the "state space dual" form; Dao & Gu 2024, REFERENCE.md §2), per
 * batch row and head i (group gi = floor(i / (h/g)), whose B and C it shares):
 *   dt_t = clamp(softplus(dt_t + dtBias_i), dtLimit)  (softplus only if dtSoftplus; clamp: min then max)
 *   h_t  = exp(dt_t · A_i) · h_{t-1} + dt_t · x_t ⊗ B_t        h (p, n), x_t (p) = x[t, i·p : (i+1)·p]
 *   y_t  = h_t · C_t + D_i · x_t                                 y_t (p)
 * x, y (b, l, h·p); dt (b, l, h) before bias; B, C (b, l, g·n); A, D, dtBias (h); h0, hOut (b, h, p, n).
 * All inputs may be views (column windows of in_proj's or the conv's output). h0 null: zeros; hOut
 * receives h_l; h0 and hOut may be the same tensor (the recurrent step, l = 1). `chunkSize` is the
 * block length of the chunked algorithm; it changes rounding only, never the result.
 */
export interface SsdScanArgs {
  y: Tensor;
  x: Tensor;
  dt: Tensor;
  A: Tensor;
  B: Tensor;
  C: Tensor;
  D: Tensor | null;
  dtBias: Tensor | null;
  dtSoftplus: boolean;
  /** [min, max] for dt after softplus; [-Infinity, Infinity] leaves it as is. */
  dtLimit: readonly [number, number];
  /** g: groups of heads sharing B and C (h divisible by g). */
  nGroups: number;
  /** Q: chunk length (>= 1). */
  chunkSize: number;
  h0: Tensor | null;
  hOut: Tensor | null;
}

export interface GatedRmsnormOptions {
  /** Columns normalised together: a divisor of the row width (the row width itself: one group). */
  groupSize: number;
  eps: number;
  /** true: normalise, then gate; false: gate, then normalise (transformers' Mamba-2 always). */
  normBeforeGate: boolean;
}
