import type { Backend } from '../backend/backend.js';
import type { HostView } from '../backend/contract/memory.js';
import { fail } from '../errors.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Mixer, MixerState } from './mixer.js';
import type { Mlp } from './mlp.js';

/**
 * A mixture of experts (sparse MoE feed-forward), a stateless mixer:
 *   s = router(x) (E scores per token)  ->  the top-k experts of each token and their weights w
 *   out = sum over the chosen e of w_e · expert_e(x)  [+ shared(x)]
 * Only each token's chosen experts run: the rows routed to expert e are gathered (the embedding
 * kernel as a row gather), pushed through that expert's MLP, and added back weighted.
 *
 * Routing, as each architecture's reference computes it (f32 on the host):
 *   topk-softmax (Granite MoE):   top-k of the logits; w = softmax over the k chosen logits
 *   softmax-topk (Jamba, Mixtral-style): p = softmax over all E; top-k of p; w = p (renormalised if normTopk)
 *   sigmoid (Nemotron-H, DeepSeek-V3): p = sigmoid(logits); choose the top-k of p + correction bias among
 *     the best `topkGroup` of `nGroup` groups (each ranked by the sum of its two best); w = the chosen p,
 *     divided by their sum (+1e-20) if normTopk, times `scaling`
 * The router decision is made on the host, so this mixer runs where the host can address the
 * backend's memory (the CPU); elsewhere it is a clear UNSUPPORTED.
 */
export type MoeRouting = 'topk-softmax' | 'softmax-topk' | 'sigmoid';

export interface MoeOptions {
  topK: number;
  routing: MoeRouting;
  normTopk: boolean;
  scaling: number;
  nGroup: number;
  topkGroup: number;
}

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
  private bias: Float32Array | null = null;

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
  }

  /** Per token: the chosen experts and their weights. scores (m, E) as rows of a host view. */
  route(logits: HostView, m: number): { experts: Int32Array; weights: Float32Array } {
    const E = this.nExperts;
    const { topK: k, routing, normTopk, scaling, nGroup, topkGroup } = this.opts;
    const experts = new Int32Array(m * k);
    const weights = new Float32Array(m * k);
    const p = new Float64Array(E);
    const choice = new Float64Array(E);
    if (routing === 'sigmoid' && this.w.correctionBias && !this.bias) {
      const hv = this.host(this.w.correctionBias);
      this.bias = Float32Array.from(hv.data.subarray(hv.off, hv.off + E));
    }
    for (let r = 0; r < m; r++) {
      const row = logits.off + r * logits.ld;
      for (let e = 0; e < E; e++) p[e] = logits.data[row + e];
      if (routing === 'softmax-topk') softmaxInPlace(p, E);
      if (routing === 'sigmoid') for (let e = 0; e < E; e++) p[e] = 1 / (1 + Math.exp(-p[e]));
      for (let e = 0; e < E; e++) choice[e] = p[e] + (routing === 'sigmoid' && this.bias ? this.bias[e] : 0);
      if (routing === 'sigmoid' && topkGroup < nGroup) maskGroups(choice, E, nGroup, topkGroup);
      const chosen = topIndices(choice, E, k);
      let sum = 0;
      for (let j = 0; j < k; j++) sum += routing === 'topk-softmax' ? 0 : p[chosen[j]];
      if (routing === 'topk-softmax') {
        // softmax over the k chosen logits
        const mx = p[chosen[0]];
        let z = 0;
        for (let j = 0; j < k; j++) z += Math.exp(p[chosen[j]] - mx);
        for (let j = 0; j < k; j++) weights[r * k + j] = Math.exp(p[chosen[j]] - mx) / z;
      } else {
        const denom = normTopk ? sum + (routing === 'sigmoid' ? 1e-20 : 0) : 1;
        for (let j = 0; j < k; j++) weights[r * k + j] = (p[chosen[j]] / denom) * scaling;
      }
      for (let j = 0; j < k; j++) experts[r * k + j] = chosen[j];
    }
    return { experts, weights };
  }

  private host(t: Tensor): HostView {
    const hv = this.backend.hostView?.(t);
    if (!hv)
      fail(
        'UNSUPPORTED',
        `mixture of experts: the ${this.backend.name} backend cannot expose the router's scores to the host; ` +
          'MoE models run on the cpu backend',
        { backend: this.backend.name },
      );
    return hv;
  }

  /** out (m, d) <- moe(x (m, d)). */
  private apply(x: Tensor, out: Tensor): void {
    const bk = this.backend;
    const m = x.rows,
      d = x.cols,
      E = this.nExperts,
      k = this.opts.topK;
    scope(() => {
      const logits = bk.alloc([m, E]);
      bk.matmul(logits, x, this.w.router, { transB: true }); // (m, E)
      const { experts, weights } = this.route(this.host(logits), m);
      if (this.shared) this.shared.apply(x, out, this.shared.workspace(m, false));
      else bk.fill(out, 0);
      const o = this.host(out);
      // rows routed to each expert, and where their weight sits
      const rows: number[][] = Array.from({ length: E }, () => []);
      const slots: number[][] = Array.from({ length: E }, () => []);
      for (let i = 0; i < m * k; i++) {
        rows[experts[i]].push(Math.floor(i / k));
        slots[experts[i]].push(i);
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
        const y = this.host(ye);
        for (let j = 0; j < n; j++) {
          const wt = weights[slots[e][j]];
          const src = y.off + j * y.ld,
            dst = o.off + rows[e][j] * o.ld;
          for (let c = 0; c < d; c++) o.data[dst + c] += wt * y.data[src + c];
        }
      }
    });
  }

  forward(x: Tensor): Tensor {
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

  parametersChanged(): void {
    this.bias = null;
  }
}

function softmaxInPlace(p: Float64Array, n: number): void {
  let mx = -Infinity;
  for (let i = 0; i < n; i++) mx = Math.max(mx, p[i]);
  let z = 0;
  for (let i = 0; i < n; i++) z += p[i] = Math.exp(p[i] - mx);
  for (let i = 0; i < n; i++) p[i] /= z;
}

/** Indices of the k largest of s[0..n), largest first; the lower index first on ties (torch.topk's order). */
function topIndices(s: Float64Array, n: number, k: number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((a, b) => s[b] - s[a] || a - b);
  return idx.slice(0, k);
}

/** Sets to -inf the experts outside the best `keep` of `groups` groups (each ranked by its two best scores). */
function maskGroups(s: Float64Array, n: number, groups: number, keep: number): void {
  const size = n / groups;
  const rank = new Float64Array(groups);
  for (let g = 0; g < groups; g++) {
    const best = topIndices(s.subarray(g * size, (g + 1) * size), size, Math.min(2, size));
    rank[g] = best.reduce((a, i) => a + s[g * size + i], 0);
  }
  const kept = new Set(topIndices(rank, groups, keep));
  for (let g = 0; g < groups; g++) if (!kept.has(g)) s.fill(-Infinity, g * size, (g + 1) * size);
}

function contiguousCopy(bk: Backend, x: Tensor): Tensor {
  const c = bk.alloc(x.shape);
  bk.copy(c, x);
  return c;
}
