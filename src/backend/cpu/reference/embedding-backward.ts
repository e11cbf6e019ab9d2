import type { FView, View } from './view.js';

/**
 * The gradient of `embedding`, a scatter-add: dTable[ids[i]] += g[i] for each of the m rows (rows with
 * the same id add up). dTable (V, d) is not cleared first. The ids were range-checked by the forward.
 */
export function embeddingBackward(dTable: FView, ids: View, g: FView, m: number, d: number): void {
  const T = dTable.data as Float32Array,
    G = g.data as Float32Array,
    I = ids.data as Int32Array;
  for (let i = 0; i < m; i++) {
    const row = dTable.off + I[ids.off + i] * dTable.ld;
    const go = g.off + i * g.ld;
    for (let c = 0; c < d; c++) T[row + c] = T[row + c] + G[go + c];
  }
}
