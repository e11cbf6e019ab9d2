import type { Backend } from '../backend/backend.js';
import { requireMixerKernel, type MoeRouteOptions } from '../backend/contract/mixers.js';
import type { MoeExpertsArgs } from '../backend/contract/moe-experts.js';
import { fail } from '../errors.js';
import { scope } from '../tensor/scope.js';
import { needsGrad, Tensor } from '../tensor/tensor.js';
import type { Mixer, MixerState } from './mixer.js';
import { Mlp } from './mlp.js';
import { moeForward } from './moe-train.js';

/**
 * A mixture of experts (sparse MoE feed-forward), a stateless mixer:
 *   s = router(x) (E scores per token)  ->  the top-k experts of each token and their weights w
 *   out = sum over the chosen e of w_e · expert_e(x)  [+ shared(x)]
 * The routing (top-k then softmax for Granite, softmax then top-k for Jamba, sigmoid with a correction
 * bias, groups and scaling for Nemotron-H) is the backend's `moeRoute` kernel, which writes dense
 * weights (m, E), zero for the experts a token did not choose.
 * Only each token's chosen experts run. Where the host addresses the backend's memory (the CPU, the
 * specification) the rows routed to expert e are gathered (the embedding kernel as a row gather),
 * pushed through that expert's MLP, and added back weighted. Elsewhere (WebGPU, where reading the
 * choice back would stall the queue) the backend's `moeExperts` kernel takes the choice from the dense
 * weights on the device and runs the chosen experts' products over (token, slot) pairs
 * (contract/moe-experts.ts); it needs each projection of the E experts stacked in one tensor, which
 * Granite's checkpoints are and per-expert checkpoints (Jamba, Nemotron-H) are made at construction
 * (the experts become views of the stacks, their own tensors freed: no memory beyond the copy). Where
 * that is not possible (biases, a stack the backend cannot make, a backend without the kernel) every
 * expert runs on every row and `moeAccumulate` adds it weighted, the unchosen with 0.
 */
export type { MoeRouting } from '../backend/contract/mixers.js';
export type MoeOptions = MoeRouteOptions;

export interface MoeWeights {
  router: Tensor; // (E, d)
  /** The sigmoid router's e_score_correction_bias (E), used for the choice only. */
  correctionBias: Tensor | null;
}

/** How the router's tensors are named under the mixer (Granite `router.layer.weight`, Nemotron `gate.weight`). */
export interface MoeNames {
  router: string;
  correctionBias: string;
  /** The i-th expert's prefix (`experts.3`); null where the experts are stacked (`stackedExperts`). */
  expert: ((i: number) => string) | null;
  shared: string;
}

export class MixtureOfExperts implements Mixer {
  readonly kind = 'moe';
  readonly nExperts: number;
  /** The experts' projections stacked for `moeExperts` (null: the host path, or every expert on every row). */
  readonly stacked: Omit<MoeExpertsArgs, 'out' | 'x' | 'weights' | 'topK'> | null;

  constructor(
    readonly backend: Backend,
    readonly w: MoeWeights,
    readonly experts: Mlp[],
    readonly shared: Mlp | null,
    readonly opts: MoeOptions,
    readonly names: MoeNames,
    /** Parameters of stacked experts (Granite's input_linear (E, 2I, d)), by name; the experts are views of them. */
    readonly stackedExperts: Map<string, Tensor> = new Map(),
  ) {
    this.nExperts = w.router.rows;
    const { topK, nGroup, topkGroup } = opts;
    const E = this.nExperts;
    if (experts.length !== E) fail('SHAPE_MISMATCH', `moe: the router scores ${E} experts, ${experts.length} given`);
    if (!(Number.isInteger(topK) && topK >= 1 && topK <= E))
      fail('BAD_ARGUMENT', `moe: num_experts_per_tok ${topK} must be in [1, ${E}]`);
    if (!(Number.isInteger(nGroup) && nGroup >= 1 && E % nGroup === 0 && topkGroup >= 1 && topkGroup <= nGroup))
      fail('BAD_ARGUMENT', `moe: n_group ${nGroup} must divide the ${E} experts and topk_group ${topkGroup} <= it`);
    this.stacked = backend.hostView || !backend.moeExperts ? null : this.stack();
  }

  /**
   * The experts' up, gate and down projections each as one (E·rows, cols) tensor: the tensor they are
   * views of (Granite's input_linear / output_linear), or a stack copied on the device, the experts
   * then rebuilt as views of it and their own tensors freed. Null where the experts differ in kind or
   * have biases, or the backend cannot stack a projection (`stackExperts`: q4 whose scales end
   * mid-word, a stack past the device's buffer size).
   */
  private stack(): MixtureOfExperts['stacked'] {
    const ex = this.experts;
    const { activation, w: w0 } = ex[0];
    const plain = (e: Mlp): boolean =>
      e.activation === activation && !e.w.upBias && !e.w.gateBias && !e.w.downBias && !e.w.gate === !w0.gate;
    if (!ex.every(plain)) return null;
    const parts = ['up', 'gate', 'down'] as const;
    const stacks = parts.map((k) =>
      w0[k]
        ? stackRows(
            this.backend,
            ex.map((e) => e.w[k]!),
          )
        : null,
    );
    if (parts.some((k, i) => w0[k] && !stacks[i])) {
      for (const s of stacks) if (s?.copied) s.t.dispose();
      return null;
    }
    const [up, gate, down] = stacks;
    if (stacks.some((s) => s?.copied))
      ex.forEach((e, i) => {
        const view = (k: number, t: Tensor): Tensor => {
          const s = stacks[k]!;
          if (!s.copied) return t;
          t.dispose();
          return rowBlock(s.t, i * t.rows, t.rows);
        };
        const w = e.w;
        ex[i] = new Mlp(
          this.backend,
          { ...w, up: view(0, w.up), gate: w.gate && view(1, w.gate), down: view(2, w.down) },
          e.activation,
          e.names,
        );
      });
    return { up: up!.t, gate: gate?.t ?? null, down: down!.t, activation };
  }

  /** Dense routing weights (m, E) of the rows of x (m, d): zero where a token did not choose the expert. */
  route(x: Tensor): Tensor {
    const bk = this.backend;
    const logits = bk.alloc([x.rows, this.nExperts]);
    bk.matmul(logits, x, this.w.router, { transB: true }); // (m, E)
    const weights = bk.alloc([x.rows, this.nExperts]);
    requireMixerKernel(bk, 'moeRoute')(weights, logits, this.w.correctionBias, this.opts);
    logits.dispose();
    return weights;
  }

  /** out (m, d) <- moe(x (m, d)). */
  private apply(x: Tensor, out: Tensor): void {
    const bk = this.backend;
    const m = x.rows,
      d = x.cols,
      E = this.nExperts;
    scope(() => {
      const weights = this.route(x); // (m, E)
      if (this.shared) this.shared.apply(x, out, this.shared.workspace(m, false));
      else bk.fill(out, 0);
      const w = bk.hostView?.(weights);
      const o = bk.hostView?.(out);
      if ((!w || !o) && this.stacked && bk.moeExperts) {
        bk.moeExperts({ out, x, weights, topK: this.opts.topK, ...this.stacked });
        return;
      }
      if (!w || !o) {
        // every expert on every row, added with its (mostly zero) weight
        const accumulate = requireMixerKernel(bk, 'moeAccumulate');
        const ye = bk.alloc([m, d]);
        for (let e = 0; e < E; e++) {
          this.experts[e].apply(x, ye, this.experts[e].workspace(m, false));
          accumulate(out, ye, weights, e);
        }
        return;
      }
      // the rows routed to each expert (a nonzero weight), and those weights
      const rows: number[][] = Array.from({ length: E }, () => []);
      const wts: number[][] = Array.from({ length: E }, () => []);
      for (let r = 0; r < m; r++)
        for (let e = 0; e < E; e++) {
          const v = w.data[w.off + r * w.ld + e];
          if (v !== 0) {
            rows[e].push(r);
            wts[e].push(v);
          }
        }
      const table = x.isContiguous ? x : contiguousCopy(bk, x);
      for (let e = 0; e < E; e++) {
        const n = rows[e].length;
        if (n === 0) continue;
        const ids = bk.upload(Int32Array.from(rows[e]), [n], 'i32');
        const xe = bk.alloc([n, d]);
        bk.embedding(xe, ids, table); // gather the routed rows (n, d)
        const ye = bk.alloc([n, d]);
        this.experts[e].apply(xe, ye, this.experts[e].workspace(n, false));
        const y = bk.hostView!(ye);
        for (let j = 0; j < n; j++) {
          const wt = wts[e][j];
          const src = y.off + j * y.ld,
            dst = o.off + rows[e][j] * o.ld;
          for (let c = 0; c < d; c++) o.data[dst + c] += wt * y.data[src + c];
        }
      }
    });
  }

  forward(x: Tensor): Tensor {
    if (needsGrad(x, ...this.parameters().values())) return moeForward(this, x); // training
    const m = x.rows;
    const out = this.backend.alloc(x.shape);
    this.apply(x.reshape([m, x.cols]), out.reshape([m, x.cols]));
    return out;
  }

  step(x: Tensor, out: Tensor, _state: MixerState): void {
    this.apply(x, out);
  }

  initState(): MixerState {
    return {};
  }

  stateShapes(): Record<string, readonly number[]> {
    return {};
  }

  parameters(): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    m.set(this.names.router, this.w.router);
    if (this.w.correctionBias) m.set(this.names.correctionBias, this.w.correctionBias);
    for (const [n, t] of this.stackedExperts) m.set(n, t);
    const ex = this.names.expert;
    if (ex)
      this.experts.forEach((e, i) => {
        for (const [n, t] of e.parameters()) m.set(`${ex(i)}.${n}`, t);
      });
    if (this.shared) for (const [n, t] of this.shared.parameters()) m.set(`${this.names.shared}.${n}`, t);
    return m;
  }

  parametersChanged(): void {}
}

/** Whether the tensors are consecutive row blocks of one tensor, filling it (Granite's stacked experts). */
function viewsOfOne(ts: Tensor[]): boolean {
  const [t0] = ts;
  const base = t0.base;
  if (!base || base.rows !== ts.length * t0.rows || base.cols !== t0.cols || t0.offset !== base.offset) return false;
  return ts.every(
    (t, i) =>
      t.storage === base.storage &&
      t.rows === t0.rows &&
      t.cols === t0.cols &&
      t.dtype === base.dtype &&
      t.ld === base.ld &&
      t.offset === base.offset + i * t0.rows * base.ld,
  );
}

/**
 * The tensors' rows stacked in one tensor: their base where they are its blocks, else a device copy
 * (kept); null where the backend cannot stack their format (q4 without `stackExperts`).
 */
function stackRows(bk: Backend, ts: Tensor[]): { t: Tensor; copied: boolean } | null {
  if (viewsOfOne(ts)) return { t: ts[0].base!, copied: false };
  if (bk.stackExperts) {
    const s = bk.stackExperts(ts);
    return s && { t: s.keep(), copied: true };
  }
  const [t0] = ts;
  if (t0.dtype === 'q4') return null;
  const s = bk.alloc([ts.length * t0.rows, t0.cols], t0.dtype).keep();
  ts.forEach((t, i) => bk.copy(rowBlock(s, i * t0.rows, t0.rows), t));
  return { t: s, copied: true };
}

/** Rows [start, start + count) of a matrix, as a view. */
function rowBlock(t: Tensor, start: number, count: number): Tensor {
  return new Tensor(t.backend, t.storage, [count, t.cols], t.dtype, t.offset + start * t.ld, t.ld, t.base ?? t);
}

function contiguousCopy(bk: Backend, x: Tensor): Tensor {
  const c = bk.alloc(x.shape);
  bk.copy(c, x);
  return c;
}
