import { fail, fmtShape } from '../../errors.js';
import { checkShape } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkFloat, checkSameBackend } from './checks.js';
import type { KvAppendArgs } from './kv-append.js';
import type { Mamba3ScanArgs, Mamba3ScanBackwardArgs } from './mamba3.js';
import type { MoeExpertsArgs } from './moe-experts.js';

/**
 * Other sequence mixers: S4D, H3, Hyena, attention (src/mixers/, docs/mixers.md).
 * Optional like the training kernels: a backend without them runs Mamba, and a mixer that needs one
 * throws UNSUPPORTED naming it (`requireMixerKernel`). Backward kernels overwrite their outputs.
 */
export interface MixerKernels {
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

  /** A decode token's keys (rotated) and values into the KV cache and its counters, fused (contract/kv-append.ts). */
  kvAppend?(a: KvAppendArgs): void;

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

  /**
   * The router of a sparse mixture of experts, as dense weights: for each row of logits (m, E),
   * weights (m, E) holds the chosen experts' weights and zeros elsewhere (f32 math, f64 on the CPU):
   *   topk-softmax (Granite MoE):  top-k of the logits; w = softmax over the k chosen logits
   *   softmax-topk (Jamba, Mixtral): p = softmax over all E; top-k of p; w = p, / their sum if normTopk
   *   sigmoid (Nemotron-H, DeepSeek-V3): p = sigmoid(logits); the top-k of p + bias among the best
   *     topkGroup of nGroup groups (each ranked by the sum of its two best); w = p / (their sum + 1e-20)
   *     if normTopk, times scaling
   * Ties go to the lower index. `bias` (E) or null (sigmoid only). E <= 256.
   */
  moeRoute?(weights: Tensor, logits: Tensor, bias: Tensor | null, o: MoeRouteOptions): void;

  /** out (m, d) <- out + weights[:, expert] ⊙ y: each row of y scaled by its row's weight for `expert`. */
  moeAccumulate?(out: Tensor, y: Tensor, weights: Tensor, expert: number): void;

  /**
   * The experts of a mixture of experts, each token's chosen ones only, added into out
   * (contract/moe-experts.ts). For backends whose host cannot read the choice (WebGPU); not in
   * MIXER_KERNELS: the mixer needs it nowhere (the CPU reads the choice, others fall back to moeAccumulate).
   */
  moeExperts?(a: MoeExpertsArgs): void;

  /**
   * One (n·rows, cols) tensor holding the rows of the n tensors (one shape and dtype, q4 included) in
   * order: the experts' stack `moeExperts` reads. Null where this backend cannot stack that format
   * or the stack would not fit one buffer.
   */
  stackExperts?(ts: readonly Tensor[]): Tensor | null;

  /** Mamba-3's SSM from its in_proj output to the gated output (contract/mamba3.ts); l = 1 is the step. */
  mamba3Scan?(a: Mamba3ScanArgs): void;

  /** Gradient of `mamba3Scan` over whole sequences from the zero state (contract/mamba3.ts). */
  mamba3ScanBackward?(a: Mamba3ScanBackwardArgs): void;
}

/** The optional kernels of the contract that the mixers beyond Mamba need (S4D, H3, Hyena, attention). */
export type MixerKernel = keyof MixerKernels;

export const MIXER_KERNELS: readonly MixerKernel[] = [
  'fftConv',
  'fftConvBackward',
  'ssmConvKernel',
  'ssmConvKernelBackward',
  'diagonalSsmScan',
  'attention',
  'attentionBackward',
  'rotary',
  'moeRoute',
  'moeAccumulate',
  'mamba3Scan',
  'mamba3ScanBackward',
];

/** The backend's kernel `k`, bound to it; UNSUPPORTED naming the kernel when the backend lacks it. */
export function requireMixerKernel<K extends MixerKernel>(
  bk: MixerKernels & { readonly name: string },
  k: K,
): NonNullable<MixerKernels[K]> {
  const f = bk[k] as ((...args: never[]) => void) | undefined;
  if (!f)
    fail(
      'UNSUPPORTED',
      `the ${bk.name} backend has no ${k} kernel yet (needed by the S4D, H3, Hyena, attention and Mamba-3 mixers); use the cpu backend`,
      { backend: bk.name, kernel: k },
    );
  return f.bind(bk) as NonNullable<MixerKernels[K]>;
}

/** Which mixer kernels a backend lacks. */
export function missingMixerKernels(bk: MixerKernels): MixerKernel[] {
  return MIXER_KERNELS.filter((k) => typeof bk[k] !== 'function');
}

function check3(op: string, what: string, t: Tensor): [number, number, number] {
  checkFloat(op, what, t);
  if (t.rank !== 3) fail('SHAPE_MISMATCH', `${op}: ${what} must be (b, l, channels), got ${fmtShape(t.shape)}`);
  return t.shape as [number, number, number];
}

export function checkFftConv(
  op: string,
  y: Tensor,
  u: Tensor,
  K: Tensor,
): { b: number; l: number; e: number; lk: number } {
  checkSameBackend(op, y, u, K);
  const [b, l, e] = check3(op, 'u', u);
  checkFloat(op, 'y', y);
  checkShape(op, 'y', y.shape, [b, l, e]);
  checkFloat(op, 'K', K);
  if (K.rank !== 2 || K.cols !== e || K.rows < l)
    fail(
      'SHAPE_MISMATCH',
      `${op}: K has shape ${fmtShape(K.shape)}, expected (lk, ${e}) with lk >= the sequence length ${l}: one filter of at least l taps per channel`,
    );
  return { b, l, e, lk: K.rows };
}

export function checkFftConvBackward(
  du: Tensor,
  dK: Tensor,
  g: Tensor,
  u: Tensor,
  K: Tensor,
): { b: number; l: number; e: number; lk: number } {
  const op = 'fftConvBackward';
  const dims = checkFftConv(op, g, u, K);
  checkSameBackend(op, du, dK);
  checkFloat(op, 'du', du);
  checkFloat(op, 'dK', dK);
  checkShape(op, 'du', du.shape, u.shape);
  checkShape(op, 'dK', dK.shape, K.shape);
  return dims;
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

function checkSsmParams(op: string, p: SsmParams): { e: number; N: number } {
  checkSameBackend(op, p.dt, p.ARe, p.AIm, p.CRe, p.CIm);
  checkFloat(op, 'dt', p.dt);
  if (p.ARe.rank !== 2) fail('SHAPE_MISMATCH', `${op}: ARe must be (e, N), got ${fmtShape(p.ARe.shape)}`);
  const [e, N] = p.ARe.shape as [number, number];
  checkShape(op, 'dt', p.dt.shape, [e]);
  for (const [what, t] of [
    ['ARe', p.ARe],
    ['AIm', p.AIm],
    ['CRe', p.CRe],
    ['CIm', p.CIm],
  ] as const) {
    checkFloat(op, what, t);
    checkShape(op, what, t.shape, [e, N]);
  }
  if (!(p.scale === 1 || p.scale === 2))
    fail('BAD_ARGUMENT', `${op}: scale must be 1 (real modes) or 2 (conjugate pairs), got ${p.scale}`);
  return { e, N };
}

export function checkSsmConvKernel(a: SsmConvKernelArgs): { L: number; e: number; N: number } {
  const op = 'ssmConvKernel';
  const { e, N } = checkSsmParams(op, a);
  checkSameBackend(op, a.K, a.dt);
  checkFloat(op, 'K', a.K);
  if (a.K.rank !== 2 || a.K.cols !== e)
    fail('SHAPE_MISMATCH', `${op}: K has shape ${fmtShape(a.K.shape)}, expected (L, ${e})`);
  return { L: a.K.rows, e, N };
}

export function checkSsmConvKernelBackward(a: SsmConvKernelBackwardArgs): { L: number; e: number; N: number } {
  const op = 'ssmConvKernelBackward';
  const dims = checkSsmConvKernel({ ...a, K: a.g });
  checkSameBackend(op, a.g, a.dDt, a.dARe, a.dAIm, a.dCRe, a.dCIm);
  for (const [what, t, like] of [
    ['dDt', a.dDt, a.dt],
    ['dARe', a.dARe, a.ARe],
    ['dAIm', a.dAIm, a.AIm],
    ['dCRe', a.dCRe, a.CRe],
    ['dCIm', a.dCIm, a.CIm],
  ] as const) {
    checkFloat(op, what, t);
    checkShape(op, what, t.shape, like.shape);
  }
  return dims;
}

export function checkDiagonalSsmScan(a: DiagonalSsmScanArgs): { b: number; l: number; e: number; N: number } {
  const op = 'diagonalSsmScan';
  const { e, N } = checkSsmParams(op, a);
  checkSameBackend(op, a.y, a.u, a.D, a.state, a.dt);
  const [b, l] = check3(op, 'u', a.u);
  checkShape(op, 'u', a.u.shape, [b, l, e]);
  checkFloat(op, 'y', a.y);
  checkShape(op, 'y', a.y.shape, [b, l, e]);
  if (a.D) {
    checkFloat(op, 'D', a.D);
    checkShape(op, 'D', a.D.shape, [e]);
  }
  if (a.state) {
    checkFloat(op, 'state', a.state);
    checkShape(op, 'state', a.state.shape, [b, e, 2 * N]);
  }
  return { b, l, e, N };
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
  /** Heads of k and v (grouped-query attention); default `heads`. */
  kvHeads?: number;
  /**
   * Key rows in use per sequence, (b) f32 holding integers in [lq, lk] (a batch of sequences at different
   * context lengths: the server's decode batch of a hybrid model); replaces `keys` row by row, and row bi
   * reads no key past its own count (query i sits at position rowKeys[bi] - lq + i). `keys` then bounds them.
   */
  rowKeys?: Tensor;
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

export function checkAttention(
  op: string,
  a: AttentionArgs,
): { b: number; lq: number; lk: number; H: number; G: number; dk: number; dv: number; keys: number } {
  checkSameBackend(op, a.out, a.q, a.k, a.v);
  const [b, lq, qc] = check3(op, 'q', a.q);
  const [bk, lk, kc] = check3(op, 'k', a.k);
  const [bv, lv, vc] = check3(op, 'v', a.v);
  const H = a.heads;
  const G = a.kvHeads ?? H;
  if (!(Number.isInteger(H) && H > 0 && qc % H === 0 && vc % G === 0))
    fail('BAD_ARGUMENT', `${op}: heads ${H} must be a positive integer dividing the widths of q (${qc}) and v (${vc})`);
  if (!(Number.isInteger(G) && G > 0 && H % G === 0))
    fail('BAD_ARGUMENT', `${op}: kvHeads ${G} must be a positive integer dividing heads ${H}`);
  if (bk !== b || bv !== b || lv !== lk)
    fail(
      'SHAPE_MISMATCH',
      `${op}: q ${fmtShape(a.q.shape)}, k ${fmtShape(a.k.shape)} and v ${fmtShape(a.v.shape)} must share the batch, and k and v the length`,
    );
  if (kc * H !== qc * G)
    fail('SHAPE_MISMATCH', `${op}: k has width ${kc}, expected ${(qc / H) * G} (${G} heads of q's width ${qc / H})`);
  const dv = vc / G;
  checkFloat(op, 'out', a.out);
  checkShape(op, 'out', a.out.shape, [b, lq, H * dv]);
  const keys = a.keys ?? lk;
  if (!(Number.isInteger(keys) && keys >= lq && keys <= lk))
    fail(
      'BAD_ARGUMENT',
      `${op}: keys must be an integer in [${lq}, ${lk}] (at least one key per query, at most the rows of k), got ${keys}`,
    );
  if (!Number.isFinite(a.scale)) fail('BAD_ARGUMENT', `${op}: scale must be a finite number, got ${a.scale}`);
  if (a.rowKeys) {
    checkSameBackend(op, a.out, a.rowKeys);
    checkFloat(op, 'rowKeys', a.rowKeys);
    checkShape(op, 'rowKeys', a.rowKeys.shape, [b]);
  }
  return { b, lq, lk, H, G, dk: qc / H, dv, keys };
}

export function checkAttentionBackward(a: AttentionBackwardArgs): {
  b: number;
  l: number;
  H: number;
  dk: number;
  dv: number;
} {
  const op = 'attentionBackward';
  const d = checkAttention(op, { out: a.g, q: a.q, k: a.k, v: a.v, heads: a.heads, scale: a.scale });
  if (d.lq !== d.lk)
    fail(
      'SHAPE_MISMATCH',
      `${op}: q has ${d.lq} rows per sequence and k ${d.lk}; the gradient is for full causal attention (equal lengths)`,
    );
  checkSameBackend(op, a.dq, a.dk, a.dv, a.g);
  for (const [what, t, like] of [
    ['dq', a.dq, a.q],
    ['dk', a.dk, a.k],
    ['dv', a.dv, a.v],
  ] as const) {
    checkFloat(op, what, t);
    checkShape(op, what, t.shape, like.shape);
  }
  return { b: d.b, l: d.lq, H: d.H, dk: d.dk, dv: d.dv };
}

export interface RotaryOptions {
  headDim: number;
  /** Position of row 0 of each sequence. */
  start: number;
  /** Frequency base (10000 in RoFormer, GPT-NeoX, Llama). */
  base: number;
  inverse?: boolean;
  /**
   * A start per sequence, (b) f32 holding integers (a decode batch of sequences at different positions):
   * row t of sequence bi sits at rowStarts[bi] + t; `start` is then unused.
   */
  rowStarts?: Tensor;
}

export function checkRotary(out: Tensor, x: Tensor, o: RotaryOptions): { b: number; l: number; H: number; dh: number } {
  const op = 'rotary';
  checkSameBackend(op, out, x);
  const [b, l, w] = check3(op, 'x', x);
  checkFloat(op, 'out', out);
  checkShape(op, 'out', out.shape, [b, l, w]);
  const dh = o.headDim;
  if (!(Number.isInteger(dh) && dh > 0 && dh % 2 === 0 && w % dh === 0))
    fail('BAD_ARGUMENT', `${op}: headDim must be an even positive integer dividing the width ${w}, got ${dh}`);
  if (!(Number.isInteger(o.start) && o.start >= 0))
    fail('BAD_ARGUMENT', `${op}: start must be a non-negative integer, got ${o.start}`);
  if (!(o.base > 1)) fail('BAD_ARGUMENT', `${op}: base must be > 1, got ${o.base}`);
  if (o.rowStarts) {
    checkSameBackend(op, x, o.rowStarts);
    checkFloat(op, 'rowStarts', o.rowStarts);
    checkShape(op, 'rowStarts', o.rowStarts.shape, [b]);
  }
  return { b, l, H: w / dh, dh };
}

export type MoeRouting = 'topk-softmax' | 'softmax-topk' | 'sigmoid';

export interface MoeRouteOptions {
  topK: number;
  routing: MoeRouting;
  /** Divide the chosen weights by their sum (softmax-topk, sigmoid). */
  normTopk: boolean;
  /** Multiplies the weights (sigmoid's routed_scaling_factor; 1 otherwise). */
  scaling: number;
  /** Groups of experts (sigmoid) and how many of them may be chosen from. */
  nGroup: number;
  topkGroup: number;
}

/** Experts a router kernel handles (a thread's private arrays). */
export const MAX_EXPERTS = 256;

export function checkMoeRoute(
  weights: Tensor,
  logits: Tensor,
  bias: Tensor | null,
  o: MoeRouteOptions,
): { m: number; E: number } {
  const op = 'moeRoute';
  checkSameBackend(op, weights, logits, bias);
  checkFloat(op, 'logits', logits);
  checkFloat(op, 'weights', weights);
  const m = logits.rows,
    E = logits.cols;
  if (weights.rows !== m || weights.cols !== E)
    fail('SHAPE_MISMATCH', `${op}: weights has shape ${fmtShape(weights.shape)}, expected (${m}, ${E})`);
  if (!(E >= 1 && E <= MAX_EXPERTS)) fail('UNSUPPORTED', `${op}: ${E} experts; the kernels handle 1 to ${MAX_EXPERTS}`);
  if (bias) {
    checkFloat(op, 'bias', bias);
    checkShape(op, 'bias', bias.shape, [E]);
  }
  const { topK: k, nGroup: g, topkGroup: tg } = o;
  if (!(Number.isInteger(k) && k >= 1 && k <= E)) fail('BAD_ARGUMENT', `${op}: topK must be in [1, ${E}], got ${k}`);
  if (!(Number.isInteger(g) && g >= 1 && E % g === 0 && Number.isInteger(tg) && tg >= 1 && tg <= g))
    fail('BAD_ARGUMENT', `${op}: nGroup ${g} must divide ${E} experts and topkGroup ${tg} be in [1, nGroup]`);
  if (tg * (E / g) < k)
    fail('BAD_ARGUMENT', `${op}: topkGroup ${tg} groups of ${E / g} experts cannot hold topK ${k} experts`);
  if (!['topk-softmax', 'softmax-topk', 'sigmoid'].includes(o.routing))
    fail('BAD_ARGUMENT', `${op}: routing must be topk-softmax, softmax-topk or sigmoid, got ${String(o.routing)}`);
  if (!Number.isFinite(o.scaling)) fail('BAD_ARGUMENT', `${op}: scaling must be finite, got ${o.scaling}`);
  return { m, E };
}

export function checkMoeAccumulate(
  out: Tensor,
  y: Tensor,
  weights: Tensor,
  expert: number,
): { m: number; d: number; E: number } {
  const op = 'moeAccumulate';
  checkSameBackend(op, out, y, weights);
  checkFloat(op, 'out', out);
  checkFloat(op, 'y', y);
  checkFloat(op, 'weights', weights);
  const m = out.rows,
    d = out.cols,
    E = weights.cols;
  if (y.rows !== m || y.cols !== d)
    fail('SHAPE_MISMATCH', `${op}: y has shape ${fmtShape(y.shape)}, expected (${m}, ${d})`);
  if (weights.rows !== m) fail('SHAPE_MISMATCH', `${op}: weights has ${weights.rows} rows, expected ${m}`);
  if (!(Number.isInteger(expert) && expert >= 0 && expert < E))
    fail('BAD_ARGUMENT', `${op}: expert ${expert} is outside the ${E} columns of weights`);
  return { m, d, E };
}
