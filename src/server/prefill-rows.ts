/**
 * Which prefilling requests share one prefill forward (the engine's batched prefill).
 *
 * A forward takes ids (b, l): rows of one length. Rows of different lengths would need padding, and a
 * pad token is not a no-op for every mixer (Mamba's conv window shifts over it, the scan's Δ comes out of
 * softplus: never exactly 0), so rows would need a per-row length through every mixer's conv and scan
 * kernels. Instead rows share a forward only when their next chunks (as each request would take it
 * alone: min(prefill chunk, its next snapshot mark, its prompt's end) from where it is) have the SAME
 * length. No chunk is cut or padded, so each request's chunk plan is the one it has when served alone.
 *
 * Exactness: the rows of an SSM's state never interact, and every op of the forward but the products is
 * per row (norms, conv, scan). The products compute each output row from its own input row, in the same
 * order whatever the number of rows, as long as they take the same kernel; the backends switch to a
 * matrix-vector kernel for few rows (CPU wasm m < 8, WebGPU m <= 8, CPU TypeScript reference m < 4). So
 * a request's numbers are bit for bit those of its prefill alone when:
 *  - the chunk has at least MIN_SHARED_CHUNK tokens: its products have l rows alone and b·l batched, both
 *    past every backend's threshold (shorter last chunks of a prompt run alone);
 *  - at most MAX_ROWS_WITH_LOGITS rows, where some row's prompt ends in this forward and its last logits
 *    are sampled: the output product has one row alone and b batched, and b must stay under every
 *    backend's threshold too (rows whose prompt does not end here discard their logits).
 * (test/server/batched-prefill.test.ts checks equal tokens, greedy and seeded, against one at a time.)
 *
 * The tick's work stays bounded: rows · length <= the prefill chunk, so a tick's prefill costs about one
 * chunk's forward, as before (the decode step of the running sequences waits no longer).
 *
 * Hybrids (attention KV caches) stay on the one-request path: their rows would also have to be at one
 * position (LanguageModel.forward takes one position for the batch) and their caches gathered at their
 * filled lengths; see Engine.prefillTick.
 */

/** The fewest tokens in a chunk shared by several rows (see above: products of >= 9 rows take the matrix kernel). */
export const MIN_SHARED_CHUNK = 9;
/** The most rows in a forward whose last logits some row samples (the output product under 4 rows on every backend). */
export const MAX_ROWS_WITH_LOGITS = 3;

export interface PrefillCandidate<J> {
  job: J;
  /** Its next chunk's length alone. */
  length: number;
  /** Whether its prompt ends with that chunk (its last logits are sampled). */
  ends: boolean;
}

/** Whether a chunk of `length` tokens can share its forward at all, within a budget of `budget` tokens. */
export function canShare(length: number, budget: number): boolean {
  return length >= MIN_SHARED_CHUNK && 2 * length <= budget;
}

/**
 * The requests that join the head's forward: in line order (round robin stays fair), those whose next
 * chunk has the head's length, while rows · length fits the budget and the logits rule holds.
 */
export function pickCompanions<J>(
  head: { length: number; ends: boolean },
  budget: number,
  candidates: readonly PrefillCandidate<J>[],
): J[] {
  const L = head.length;
  if (!canShare(L, budget)) return [];
  const picked: J[] = [];
  let ends = head.ends;
  for (const c of candidates) {
    const rows = picked.length + 2; // the head, those picked, this one
    if (rows * L > budget) break;
    if (c.length !== L) continue;
    if ((ends || c.ends) && rows > MAX_ROWS_WITH_LOGITS) continue;
    picked.push(c.job);
    ends ||= c.ends;
  }
  return picked;
}
