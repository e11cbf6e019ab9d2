import { fail, fmtShape } from '../../errors.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkFloat, checkSameBackend } from './checks.js';

/** The expert MLPs a `moeExperts` call runs (mixers/mlp.ts): gated SwiGLU, or act(up) with act one of the rest. */
export type MoeExpertActivation = 'swiglu' | 'relu2' | 'gelu' | 'relu' | 'silu';

/**
 * The experts of a sparse mixture of experts, run for each token's chosen experts only:
 *   out[r] += Σ over the experts e with weights[r, e] ≠ 0 of weights[r, e] · expert_e(x[r])
 * added in increasing e (the CPU mixer's order), where expert_e is an MLP without biases:
 *   swiglu:  down_e(silu(g) ⊙ u), [g; u] = up_e(x) (fused: up_e has 2I rows [gate; up]) or g = gate_e(x), u = up_e(x)
 *   relu2:   down_e(relu(up_e(x))²)          gelu / relu / silu: down_e(act(up_e(x)))
 * The experts' matrices come stacked, expert e's rows at [e·rows, (e+1)·rows): up (E·U, d) with U = 2I
 * (fused swiglu) or I, gate (E·I, d) or null, down (E·d, I); f32, f16, bf16 or q4 (whole tensors).
 * A row has at most `topK` nonzero weights (the router's choice, `moeRoute`); an expert no row chose
 * is never read, so its weights may hold anything (NaN included).
 */
export interface MoeExpertsArgs {
  out: Tensor; // (m, d) f32, added to
  x: Tensor; // (m, d) f32
  weights: Tensor; // (m, E) f32 dense routing weights, 0 where not chosen
  topK: number;
  up: Tensor; // (E·U, d)
  gate: Tensor | null; // (E·I, d), swiglu only
  down: Tensor; // (E·d, I)
  activation: MoeExpertActivation;
}

/** Checks a `moeExperts` call; returns its sizes (I: the experts' hidden width, U: up's rows per expert). */
export function checkMoeExperts(a: MoeExpertsArgs): { m: number; d: number; E: number; I: number; U: number } {
  const op = 'moeExperts';
  const { out, x, weights, up, gate, down } = a;
  checkSameBackend(op, out, x, weights, up, gate, down);
  checkFloat(op, 'out', out);
  checkFloat(op, 'x', x);
  checkFloat(op, 'weights', weights);
  for (const [what, t] of [
    ['up', up],
    ['gate', gate],
    ['down', down],
  ] as const)
    if (t) checkFloat(op, what, t, true, ['q4']);
  const m = x.rows,
    d = x.cols,
    E = weights.cols,
    I = down.cols;
  if (out.rows !== m || out.cols !== d)
    fail('SHAPE_MISMATCH', `${op}: out has shape ${fmtShape(out.shape)}, expected (${m}, ${d})`);
  if (weights.rows !== m) fail('SHAPE_MISMATCH', `${op}: weights has ${weights.rows} rows, expected ${m}`);
  if (!(Number.isInteger(a.topK) && a.topK >= 1 && a.topK <= E))
    fail('BAD_ARGUMENT', `${op}: topK must be in [1, ${E}], got ${a.topK}`);
  if (!['swiglu', 'relu2', 'gelu', 'relu', 'silu'].includes(a.activation))
    fail('BAD_ARGUMENT', `${op}: activation must be swiglu, relu2, gelu, relu or silu, got ${String(a.activation)}`);
  if (gate && a.activation !== 'swiglu') fail('BAD_ARGUMENT', `${op}: a gate projection needs swiglu`);
  const U = a.activation === 'swiglu' && !gate ? 2 * I : I;
  const want = (what: string, t: Tensor, rows: number, cols: number): void => {
    if (t.rows !== rows || t.cols !== cols)
      fail(
        'SHAPE_MISMATCH',
        `${op}: ${what} has shape ${fmtShape(t.shape)}, expected ${E} experts of (${rows / E}, ${cols})`,
      );
  };
  want('up', up, E * U, d);
  if (gate) want('gate', gate, E * I, d);
  want('down', down, E * d, I);
  return { m, d, E, I, U };
}

/** Checks a `stackExperts` call: n >= 1 tensors of one shape and dtype on one backend; returns them. */
export function checkStackExperts(ts: readonly Tensor[]): readonly Tensor[] {
  const op = 'stackExperts';
  if (ts.length === 0) fail('BAD_ARGUMENT', `${op}: no tensors to stack`);
  checkSameBackend(op, ...ts);
  const [t0] = ts;
  for (const t of ts) {
    checkFloat(op, 'a tensor', t, true, ['q4']);
    if (t.rows !== t0.rows || t.cols !== t0.cols || t.dtype !== t0.dtype)
      fail(
        'SHAPE_MISMATCH',
        `${op}: ${t.toString()} differs from the first, ${t0.toString()}: expected one shape and dtype`,
      );
  }
  return ts;
}
