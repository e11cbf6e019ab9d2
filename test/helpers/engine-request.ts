import { GREEDY } from '../../src/backend/sampling.js';
import type { EngineRequest } from '../../src/server/engine.js';

/** Greedy sampling with the server's penalty fields spelled out (off). */
export const GREEDY_REQUEST = { ...GREEDY, presencePenalty: 0, frequencyPenalty: 0 };

/** A greedy engine request that collects its tokens into `out` and calls `onToken` after each. */
export function greedyRequest(prompt: number[], maxTokens: number, out: number[], onToken?: () => void): EngineRequest {
  return {
    prompt,
    n: 1,
    maxTokens,
    sampling: GREEDY_REQUEST,
    eos: [],
    suppress: [],
    onToken: (_c, t) => {
      if (t >= 0) out.push(t);
      onToken?.();
    },
  };
}
