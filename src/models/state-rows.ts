import { backendOf } from '../backend/backend.js';
import { fail } from '../errors.js';
import { rowsOf } from '../mixers/rows.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelState } from './state.js';

/**
 * Moving sequences between states row by row when some state tensors grow with the context (a hybrid's
 * KV caches, (b, capacity, w)): a batch of sequences at different context lengths keeps one capacity for
 * all its rows (at least the longest row's length), and each row's length in its `length` counter and in
 * ModelState.rowPositions. So a row is gathered into a batch (or a batch's row taken out as a state of
 * its own) by copying its constant-size tensors whole and only its filled positions of the growing ones,
 * after growing the destination's capacity when the row does not fit. Without growing tensors (an SSM)
 * this is a plain row copy.
 */

/** The first capacity of a grown cache (as the attention mixer's); it doubles from there. */
const FIRST_CAPACITY = 16;

/** Whether tensor `name` of layer `li` grows with the context (its per-sequence shape has a -1). */
function isGrowing(s: ModelState, li: number, name: string): boolean {
  return s.shapes?.[li]?.[name]?.some((d) => d < 0) ?? false;
}

/**
 * Copies row `srcRow` of `src` into row `row` of `dst` (same model); of the growing tensors only the
 * first `filled` positions (the tokens the row has seen), which must fit the destination's capacity
 * (`reserveContext` first).
 */
export function copyStateRow(dst: ModelState, row: number, src: ModelState, srcRow: number, filled: number): void {
  if (dst.signature !== src.signature)
    fail('STATE_MISMATCH', `state belongs to another model (${src.signature}), expected ${dst.signature}`);
  dst.layers.forEach((layer, li) => {
    for (const [k, t] of Object.entries(layer)) {
      const s = src.layers[li][k];
      if (isGrowing(dst, li, k)) {
        if (filled > t.dim(1) || filled > s.dim(1))
          fail(
            'STATE_MISMATCH',
            `a row of ${filled} positions does not fit a cache of ${Math.min(t.dim(1), s.dim(1))} (reserve first)`,
          );
        if (filled > 0) backendOf(t).copy(rowsOf(t, row, 0, filled), rowsOf(s, srcRow, 0, filled));
        continue;
      }
      // (b, ...) -> rows of b * rest: the row of a sequence is a view of (1, size/b).
      const per = t.size / dst.batch;
      const from = s.reshape([1, s.size]).narrow(srcRow * per, per);
      backendOf(t).copy(t.reshape([1, t.size]).narrow(row * per, per), from);
    }
  });
}

/**
 * Grows the capacity of every growing tensor of `state` (doubling) so that it holds `need` positions,
 * keeping the first `rows` rows' contents (all rows by default). Returns whether a tensor was replaced
 * (views of the old ones are then stale).
 */
export function reserveContext(state: ModelState, need: number, rows = state.batch): boolean {
  let grown = false;
  state.layers.forEach((layer, li) => {
    for (const [k, old] of Object.entries(layer)) {
      if (!isGrowing(state, li, k) || old.dim(1) >= need) continue;
      let next = Math.max(old.dim(1), FIRST_CAPACITY);
      while (next < need) next *= 2;
      const bk = backendOf(old);
      const t: Tensor = bk.zeros([old.dim(0), next, old.dim(2)]).keep();
      const keep = old.dim(1);
      if (keep > 0) for (let r = 0; r < rows; r++) bk.copy(rowsOf(t, r, 0, keep), rowsOf(old, r, 0, keep));
      old.dispose();
      layer[k] = t;
      grown = true;
    }
  });
  return grown;
}
