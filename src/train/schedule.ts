import { fail } from '../errors.js';

/**
 * Learning rate: linear warmup from 0 to `lr` over `warmupSteps`, then a cosine decay to `minLr` at
 * `totalSteps` (the schedule of GPT-3 and of the Mamba paper's language models, Gu & Dao 2023 App. E.2):
 *   step <= warmup:  lr * step / warmup
 *   after:           minLr + (lr - minLr) * (1 + cos(pi * p)) / 2,  p = (step - warmup) / (total - warmup)
 * Steps count from 1; past `totalSteps` it stays at minLr.
 */
export interface ScheduleOptions {
  lr: number;
  minLr: number;
  warmupSteps: number;
  totalSteps: number;
}

export function learningRate(step: number, o: ScheduleOptions): number {
  if (!Number.isInteger(step) || step < 1)
    fail('BAD_ARGUMENT', `learningRate: step must be an integer >= 1, got ${step}`);
  if (o.warmupSteps > 0 && step <= o.warmupSteps) return (o.lr * step) / o.warmupSteps;
  const span = o.totalSteps - o.warmupSteps;
  if (span <= 0 || step >= o.totalSteps) return step >= o.totalSteps ? o.minLr : o.lr;
  const p = (step - o.warmupSteps) / span;
  return o.minLr + ((o.lr - o.minLr) * (1 + Math.cos(Math.PI * p))) / 2;
}
