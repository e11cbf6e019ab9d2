import { fail, fmtShape } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import { requireKernel } from '../backend/contract/training.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * AdamW (Loshchilov & Hutter 2019) over named parameters, with the step on the backend
 * (`adamwStep`), gradient clipping by global norm folded into it (`gradScale`), and a state that a
 * checkpoint saves and restores exactly (moments m, v per parameter, and the step count).
 *
 * Weight decay (decoupled) applies to the weight matrices: linear layers, convs, S4D's C (`C_re`,
 * `C_im`), Hyena's filter network (`w1`..); not to the SSM dynamics and skips (`A_log`, `D`, which
 * mamba_ssm marks `_no_weight_decay`, and their S4D/H3 counterparts `A_im`, `log_dt`), biases (`*bias`,
 * Hyena's `b1`..), norm weights, nor by default the embeddings (the grouping of the training code used
 * for Mamba, flash-attention's `group_parameters_for_optimizer`, after minGPT: embeddings and norms
 * are not decayed). `decays(name)` is the rule; a tied lm_head is the embedding matrix.
 */
export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /**
   * Decay the embeddings too (default false). The synthetic-task runs (src/tasks) do: their results
   * were produced with every matrix decayed, the tied embedding / output matrix included.
   */
  decayEmbeddings?: boolean;
}

export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

/** Whether a parameter (Hugging Face name, or a mixer's name from src/mixers) gets weight decay. */
export function decays(name: string, decayEmbeddings = false): boolean {
  const leaf = name.slice(name.lastIndexOf('.') + 1);
  if (/^(A_log|A_im|log_dt|D)$/.test(leaf)) return false; // SSM dynamics and skips
  if (/bias$/.test(leaf) || /^b\d+$/.test(leaf)) return false; // biases (Mamba-2's dt_bias, Hyena's filter b1..)
  if (/(^|\.)(norm|norm_f|B_norm|C_norm)\.weight$/.test(name)) return false; // Mamba-3 normalises B and C too
  if (/(^|\.)(embeddings|embedding)\.weight$/.test(name)) return decayEmbeddings;
  return true;
}

/**
 * The gradient scale of clipping by global norm (torch.nn.utils.clip_grad_norm_): gradients are
 * multiplied by maxNorm / (norm + 1e-6) when their norm exceeds maxNorm; maxNorm 0 turns clipping off.
 */
export function clipScale(norm: number, maxNorm: number): number {
  return maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
}

/** Columns a gradient's sum of squares is spread over (a reduction's parallel width). */
const NORM_COLUMNS = 65536;

/**
 * A contiguous gradient (r, c) viewed as (r / k, c k) for the largest k dividing r with c k at most
 * NORM_COLUMNS: the column reduction then runs over many columns and few rows, which spreads it over
 * the whole GPU (a (50280, 768) embedding gradient as 768 columns gives 12 workgroups of long loops).
 */
function wideRows(g: Tensor): Tensor {
  const { rows, cols } = g;
  if (g.ld !== cols || rows === 1) return g;
  let k = Math.min(rows, Math.floor(NORM_COLUMNS / cols));
  while (k > 1 && rows % k !== 0) k--;
  return k > 1 ? g.reshape([rows / k, cols * k]) : g;
}

export class AdamW {
  /** Steps taken (the next step is step + 1). */
  step = 0;
  readonly m = new Map<string, Tensor>();
  readonly v = new Map<string, Tensor>();

  constructor(
    readonly params: Map<string, Tensor>,
    readonly backend: Backend,
    readonly o: AdamWOptions = ADAMW_DEFAULTS,
  ) {
    for (const [name, p] of params) {
      if (p.dtype !== 'f32')
        fail(
          'UNSUPPORTED',
          `AdamW: parameter ${name} is ${p.dtype}; training needs f32 parameters (load the model with dtype f32)`,
        );
      // a view of whole rows is fine (an expert of a stack the MoE made on the device): the kernels take offsets
      if (p.ld !== p.cols && p.rows > 1) fail('BAD_ARGUMENT', `AdamW: parameter ${name} must be contiguous`);
      this.m.set(name, backend.zeros(p.shape).keep());
      this.v.set(name, backend.zeros(p.shape).keep());
    }
  }

  /**
   * The global L2 norm of all gradients (parameters without a gradient count as zero), the quantity
   * torch.nn.utils.clip_grad_norm_ clips. The sum of squares accumulates on the backend and one scalar
   * comes back (on WebGPU, one read per step instead of one per parameter).
   */
  async gradNorm(): Promise<number> {
    const bk = this.backend;
    const reduce = requireKernel(bk, 'reduceRows');
    // each gradient's column sums of squares go into its own window of one vector, which is then
    // summed once: one dispatch per gradient plus three, instead of two per gradient
    const views: Tensor[] = [];
    let n = 0;
    for (const p of this.params.values()) {
      if (!p.grad) continue;
      const g = wideRows(p.grad);
      views.push(g);
      n += g.cols;
    }
    const width = 256;
    const parts = bk.zeros([Math.max(1, Math.ceil(n / width)) * width]);
    let at = 0;
    for (const g of views) {
      reduce('sumSquares', parts.narrow(at, g.cols), g);
      at += g.cols;
    }
    const cols = bk.alloc([width]);
    reduce('sum', cols, parts.reshape([parts.size / width, width]));
    const total = bk.alloc([1]);
    reduce('sum', total, cols.reshape([width, 1]));
    parts.dispose();
    cols.dispose();
    const sum = (await total.readFloat())[0];
    total.dispose();
    return Math.sqrt(sum);
  }

  /**
   * One update with learning rate `lr`; gradients are multiplied by `gradScale` first (clipping).
   * Parameters without a gradient are skipped (their moments do not decay), as in PyTorch.
   */
  update(lr: number, gradScale = 1): void {
    const step = requireKernel(this.backend, 'adamwStep');
    this.step++;
    for (const [name, p] of this.params) {
      if (!p.grad) continue;
      step(p, p.grad, this.m.get(name)!, this.v.get(name)!, {
        lr,
        beta1: this.o.beta1,
        beta2: this.o.beta2,
        eps: this.o.eps,
        weightDecay: decays(name, this.o.decayEmbeddings) ? this.o.weightDecay : 0,
        step: this.step,
        gradScale,
      });
    }
  }

  /** Drops every gradient (the next backward starts from zero). */
  zeroGrad(): void {
    for (const p of this.params.values()) {
      p.grad?.dispose();
      p.grad = undefined;
    }
  }

  /** Moments as named tensors for a checkpoint (`m.<name>`, `v.<name>`). */
  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, t] of this.m) out.set(`m.${name}`, t);
    for (const [name, t] of this.v) out.set(`v.${name}`, t);
    return out;
  }

  /** Restores moments and the step count from a checkpoint. */
  loadState(step: number, tensors: ReadonlyMap<string, Float32Array>, where: string): void {
    if (!Number.isInteger(step) || step < 0)
      fail('CORRUPT_FILE', `${where}: optimiser step must be a non-negative integer, got ${step}`);
    for (const [kind, map] of [
      ['m', this.m],
      ['v', this.v],
    ] as const) {
      for (const [name, t] of map) {
        const data = tensors.get(`${kind}.${name}`);
        if (!data) fail('CORRUPT_FILE', `${where}: optimiser state ${kind}.${name} is missing`);
        if (data.length !== t.size)
          fail(
            'CORRUPT_FILE',
            `${where}: optimiser state ${kind}.${name} has ${data.length} values, the parameter ${fmtShape(t.shape)} has ${t.size}`,
          );
        this.backend.copy(t, this.backend.upload(data, t.shape));
      }
    }
    this.step = step;
  }
}

/**
 * One optimiser step on the gradients the last backward left: global gradient norm (a non-finite
 * one is NON_FINITE: the update would write NaN into every parameter), clipping to `clipNorm` (0:
 * none), the AdamW update at `lr`, gradients dropped, the model told its parameters changed.
 * Returns the norm before clipping.
 */
export async function optimizerStep(
  model: { parametersChanged(): void },
  opt: AdamW,
  lr: number,
  clipNorm: number,
): Promise<number> {
  const norm = await opt.gradNorm();
  if (!Number.isFinite(norm))
    fail('NON_FINITE', `AdamW: the gradient norm is ${norm} at step ${opt.step + 1} (lower the learning rate)`);
  opt.update(lr, clipScale(norm, clipNorm));
  opt.zeroGrad();
  model.parametersChanged();
  return norm;
}
