import type { Backend } from '../backend/backend.js';
import { requireKernel } from '../backend/training-kernels.js';
import { fail } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * AdamW over named parameters with the backend's `adamwStep` kernel (decoupled weight decay, as
 * torch.optim.AdamW), two groups: weight decay on matrices and embeddings, none on the SSM's A, dt and
 * D, the norms' weights and biases (Mamba's `_no_weight_decay` and the GPT convention), plus
 * gradient clipping by global norm (through the kernel's gradScale) and a warmup + cosine schedule.
 * The shared trainer (src/train/) has the general version; this one serves the task runs.
 */
export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the global gradient norm to this (0: no clipping). */
  clipNorm: number;
}

/** Parameters that get no weight decay: SSM dynamics (A_log, A_im, log_dt), skips (D), norms, biases. */
export function noDecay(name: string): boolean {
  return /(^|\.)(A_log|A_im|log_dt|D)$/.test(name) || /norm/.test(name) || /bias$/.test(name) || /\.b\d$/.test(name);
}

export interface Slot { name: string; p: Tensor; m: Tensor; v: Tensor; decay: boolean }

export class AdamW {
  private readonly slots: Slot[] = [];
  private t = 0;

  constructor(readonly backend: Backend, params: Map<string, Tensor>, readonly o: AdamWOptions) {
    for (const [name, p] of params) {
      if (p.dtype !== 'f32') fail('DTYPE_MISMATCH', `AdamW: parameter ${name} is ${p.dtype}; training needs f32 parameters`);
      p.requiresGrad = true;
      this.slots.push({ name, p, m: backend.zeros(p.shape).keep(), v: backend.zeros(p.shape).keep(), decay: !noDecay(name) });
    }
  }

  /** Updates done so far (the bias corrections use it). */
  get step(): number { return this.t; }

  /** For checkpoints: the parameters with their moments. */
  get state(): readonly Slot[] { return this.slots; }

  /** Restores the update count (after loading moments from a checkpoint). */
  setStep(t: number): void {
    if (!(Number.isInteger(t) && t >= 0)) fail('BAD_ARGUMENT', `AdamW: step must be a non-negative integer, got ${t}`);
    this.t = t;
  }

  /** The global L2 norm of the gradients (parameters without a gradient count as zero). */
  async gradNorm(): Promise<number> {
    const reduce = requireKernel(this.backend, 'reduceRows');
    let s = 0;
    for (const { p } of this.slots) {
      if (!p.grad) continue;
      const cols = this.backend.alloc([p.grad.cols]);
      reduce('sumSquares', cols, p.grad);
      for (const v of await cols.read()) s += v;
      cols.dispose();
    }
    return Math.sqrt(s);
  }

  /** One update with learning rate `lr`; returns the gradient norm before clipping. Clears the gradients. */
  async update(lr: number): Promise<number> {
    const norm = await this.gradNorm();
    if (!Number.isFinite(norm)) fail('NON_FINITE', `AdamW: the gradient norm is ${norm} at step ${this.t + 1} (lower the learning rate)`);
    const gradScale = this.o.clipNorm > 0 && norm > this.o.clipNorm ? this.o.clipNorm / (norm + 1e-6) : 1;
    this.t++;
    const stepK = requireKernel(this.backend, 'adamwStep');
    for (const s of this.slots) {
      if (!s.p.grad) continue;
      stepK(s.p, s.p.grad, s.m, s.v, { lr, beta1: this.o.beta1, beta2: this.o.beta2, eps: this.o.eps, weightDecay: s.decay ? this.o.weightDecay : 0, step: this.t, gradScale });
    }
    this.zeroGrad();
    return norm;
  }

  zeroGrad(): void {
    for (const { p } of this.slots) { p.grad?.dispose(); p.grad = undefined; }
  }
}

/** Linear warmup over `warmup` steps to `peak`, then cosine decay to `peak · minRatio` at `total`. */
export function warmupCosine(step: number, total: number, peak: number, warmup: number, minRatio = 0.1): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const p = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return peak * (minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * p)));
}
