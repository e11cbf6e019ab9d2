import { fail } from '../errors.js';

/** The parameters of `Sampler` (backend/sampling.ts, where the semantics are written out). */
export interface SamplingParams {
  /** 0 means greedy. */
  temperature: number;
  /** 0 disables. */
  topK: number;
  /** 1 disables. */
  topP: number;
  /** 0 disables. */
  minP: number;
  /** 1 disables. */
  repetitionPenalty: number;
  seed: number;
}

export const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 0 };

export function checkSamplingParams(p: SamplingParams): void {
  const bad = (what: string, v: number, want: string): never =>
    fail('BAD_ARGUMENT', `${what} must be ${want}, got ${v}`);
  if (!(p.temperature >= 0) || !Number.isFinite(p.temperature))
    bad('temperature', p.temperature, 'a finite number >= 0');
  if (!Number.isInteger(p.topK) || p.topK < 0) bad('top-k', p.topK, 'an integer >= 0 (0 disables)');
  if (!(p.topP > 0 && p.topP <= 1)) bad('top-p', p.topP, 'in (0, 1] (1 disables)');
  if (!(p.minP >= 0 && p.minP <= 1)) bad('min-p', p.minP, 'in [0, 1] (0 disables)');
  if (!(p.repetitionPenalty > 0) || !Number.isFinite(p.repetitionPenalty))
    bad('repetition penalty', p.repetitionPenalty, 'a finite number > 0 (1 disables)');
  if (!Number.isInteger(p.seed) || p.seed < 0 || p.seed > 0xffffffff) bad('seed', p.seed, 'an integer in [0, 2^32)');
}
