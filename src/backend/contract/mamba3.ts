import { fail, fmtShape } from '../../errors.js';
import { checkShape } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkFloat, checkSameBackend } from './checks.js';

/**
 * Mamba-3's SSM (docs/mamba3.md; mamba_ssm/modules/mamba3.py) from its in_proj output to the gated
 * output before out_proj. Glossary: b batch, l length, e = h·p, h heads, p head_dim, n d_state,
 * g groups (heads of a group share B and C), R MIMO rank (1 for SISO), S rotation angles.
 * A row of `proj` (b, l, W), W = 2e + 2·R·g·n + 3h + S, is [z (e), x (e), B (R, g, n), C (R, g, n),
 * dd_dt (h), dd_A (h), trap (h), angles (S)]. Per token and head:
 *   dt = softplus(dd_dt + dt_bias),  A = min(−f(dd_A), −A_floor),  λ = sigmoid(trap),  α = exp(dt·A)
 *   θ ← θ + π·tanh(angles)·dt                                        (S) cumulative rotation angles
 *   k_r = rot(θ, rmsnorm(B_r)·w_B + B_bias_r),  q_r = rot(θ, rmsnorm(C_r)·w_C + C_bias_r)
 *   v_r = x ⊙ mimo_x_r
 *   H ← α·H + (1 − λ)·dt·α·Σ_r v'_r k'_rᵀ + λ·dt·Σ_r v_r k_rᵀ         v', k': the previous token's
 *   y_r = (H q_r + D·v_r), then · silu(z ⊙ mimo_z_r), or rmsnorm_p(·)·w_norm · silu(z ⊙ mimo_z_r)
 *   y = Σ_r mimo_o_r ⊙ y_r
 * with f(u) = 1 + u (u >= 0), 1/(1 − u) (u < 0). SISO passes null mimo_* (ones, R = 1).
 * `rot` turns S pairs of state dims: neighbours (2i, 2i+1) or, with `rotateHalves`, (i, i + n/2).
 * The state (read first, written last; zeros and discarded when null) is what decode carries:
 * theta (b, h, S), ssm = H (b, h, p, n), k = the last rotated k (b, R, h, n), x = the last x (b, h, p).
 * With l = 1 this is the recurrent step.
 */
export interface Mamba3ScanArgs {
  y: Tensor; // (b, l, e)
  proj: Tensor; // (b, l, W)
  dtBias: Tensor; // (h)
  BNorm: Tensor; // (n)
  CNorm: Tensor; // (n)
  BBias: Tensor; // (h, R, n)
  CBias: Tensor; // (h, R, n)
  D: Tensor; // (h)
  mimoX: Tensor | null; // (h, R, p)
  mimoZ: Tensor | null; // (h, R, p)
  mimoO: Tensor | null; // (h, R, p)
  /** The output norm's weight (e), or null: no output norm (y · silu(z)). */
  normWeight: Tensor | null;
  state: Mamba3State | null;
  dims: Mamba3Dims;
}

export interface Mamba3State {
  theta: Tensor; // (b, h, S)
  ssm: Tensor; // (b, h, p, n)
  k: Tensor; // (b, R, h, n)
  x: Tensor; // (b, h, p)
}

export interface Mamba3Dims {
  h: number;
  p: number;
  n: number;
  g: number;
  R: number;
  S: number;
  /** A <= −A_floor. */
  aFloor: number;
  /** Pairs (i, i + n/2) (MIMO's kernels) instead of (2i, 2i+1) (SISO's). */
  rotateHalves: boolean;
  /** eps of the B, C and output RMSNorms. */
  eps: number;
}

/** in_proj rows of Mamba-3: z, x, B, C, dd_dt, dd_A, trap, angles. */
export function mamba3ProjWidth(d: Mamba3Dims): number {
  return 2 * d.h * d.p + 2 * d.R * d.g * d.n + 3 * d.h + d.S;
}

export function checkMamba3Scan(a: Mamba3ScanArgs): { b: number; l: number } {
  const op = 'mamba3Scan';
  const { h, p, n, g, R, S } = a.dims;
  const e = h * p;
  for (const [k, v] of Object.entries({ h, p, n, g, R, S }))
    if (!(Number.isSafeInteger(v) && v > 0)) fail('BAD_ARGUMENT', `${op}: ${k} must be a positive integer, got ${v}`);
  if (h % g !== 0) fail('BAD_ARGUMENT', `${op}: the ${h} heads cannot be split into ${g} groups`);
  if (a.dims.rotateHalves ? S > Math.floor(n / 2) : 2 * S > n)
    fail('BAD_ARGUMENT', `${op}: ${S} rotation angles need ${2 * S} state dims, d_state is ${n}`);
  const st = a.state;
  checkSameBackend(op, a.y, a.proj, a.dtBias, a.BNorm, a.CNorm, a.BBias, a.CBias, a.D, a.mimoX, a.mimoZ, a.mimoO);
  checkSameBackend(op, a.y, a.normWeight, st?.theta, st?.ssm, st?.k, st?.x);
  checkFloat(op, 'proj', a.proj);
  if (a.proj.rank !== 3) fail('SHAPE_MISMATCH', `${op}: proj must be (b, l, W), got ${fmtShape(a.proj.shape)}`);
  const [b, l] = a.proj.shape as [number, number, number];
  checkShape(op, 'proj', a.proj.shape, [b, l, mamba3ProjWidth(a.dims)]);
  const shapes: [string, Tensor | null | undefined, number[]][] = [
    ['y', a.y, [b, l, e]],
    ['dt_bias', a.dtBias, [h]],
    ['B_norm.weight', a.BNorm, [n]],
    ['C_norm.weight', a.CNorm, [n]],
    ['B_bias', a.BBias, [h, R, n]],
    ['C_bias', a.CBias, [h, R, n]],
    ['D', a.D, [h]],
    ['mimo_x', a.mimoX, [h, R, p]],
    ['mimo_z', a.mimoZ, [h, R, p]],
    ['mimo_o', a.mimoO, [h, R, p]],
    ['norm.weight', a.normWeight, [e]],
    ['state theta', st?.theta, [b, h, S]],
    ['state ssm', st?.ssm, [b, h, p, n]],
    ['state k', st?.k, [b, R, h, n]],
    ['state x', st?.x, [b, h, p]],
  ];
  for (const [what, t, shape] of shapes) {
    if (!t) continue;
    checkFloat(op, what, t);
    checkShape(op, what, t.shape, shape);
  }
  const mimo = [a.mimoX, a.mimoZ, a.mimoO].filter((t) => t).length;
  if (mimo !== 0 && mimo !== 3)
    fail('BAD_ARGUMENT', `${op}: mimo_x, mimo_z and mimo_o come together (MIMO) or not at all`);
  if (mimo === 0 && R !== 1) fail('BAD_ARGUMENT', `${op}: rank ${R} without the mimo_x, mimo_z, mimo_o projections`);
  return { b, l };
}

/**
 * Gradient of `mamba3Scan` over whole sequences from the zero state (training): g = dL/dy (b, l, e) ->
 * the gradient of every input (each its input's shape, overwritten; null where the input is null).
 */
export interface Mamba3ScanBackwardArgs extends Omit<Mamba3ScanArgs, 'y' | 'state'> {
  g: Tensor; // (b, l, e)
  dProj: Tensor;
  dDtBias: Tensor;
  dBNorm: Tensor;
  dCNorm: Tensor;
  dBBias: Tensor;
  dCBias: Tensor;
  dD: Tensor;
  dMimoX: Tensor | null;
  dMimoZ: Tensor | null;
  dMimoO: Tensor | null;
  dNormWeight: Tensor | null;
}

/** Each gradient output of `mamba3ScanBackward` with the input it is the gradient of (same shape). */
export const MAMBA3_GRADIENTS = [
  ['dProj', 'proj'],
  ['dDtBias', 'dtBias'],
  ['dBNorm', 'BNorm'],
  ['dCNorm', 'CNorm'],
  ['dBBias', 'BBias'],
  ['dCBias', 'CBias'],
  ['dD', 'D'],
  ['dMimoX', 'mimoX'],
  ['dMimoZ', 'mimoZ'],
  ['dMimoO', 'mimoO'],
  ['dNormWeight', 'normWeight'],
] as const satisfies readonly (readonly [keyof Mamba3ScanBackwardArgs, keyof Mamba3ScanBackwardArgs])[];

export function checkMamba3ScanBackward(a: Mamba3ScanBackwardArgs): { b: number; l: number } {
  const op = 'mamba3ScanBackward';
  const dims = checkMamba3Scan({ ...a, y: a.g, state: null });
  const pairs = MAMBA3_GRADIENTS.map(([g, x]) => [g, a[g], a[x] as Tensor | null] as const);
  for (const [what, grad, input] of pairs) {
    if (!grad !== !input) fail('BAD_ARGUMENT', `${op}: ${what} must be given exactly when its input is`);
    if (!grad || !input) continue;
    checkSameBackend(op, grad, input);
    checkFloat(op, what, grad);
    checkShape(op, what, grad.shape, input.shape);
  }
  return dims;
}
