import { f16ToF32Table, halfToF32 } from '../../../tensor/dtype.js';
import type { FView, View } from './view.js';

/** out (m, d) <- table[ids] ; the ids were range-checked by the caller (ops/ or the model). */
export function embedding(out: FView, ids: View, table: FView, m: number, d: number): void {
  const O = out.data as Float32Array;
  const I = ids.data as Int32Array;
  const tab = table.dtype === 'f16' ? f16ToF32Table() : null;
  for (let i = 0; i < m; i++) {
    const id = I[ids.off + i];
    const src = table.off + id * table.ld;
    const dst = out.off + i * out.ld;
    if (table.dtype === 'f32') {
      O.set((table.data as Float32Array).subarray(src, src + d), dst);
    } else if (tab) {
      const T = table.data as Uint16Array;
      for (let c = 0; c < d; c++) O[dst + c] = tab[T[src + c]];
    } else {
      halfToF32((table.data as Uint16Array).subarray(src, src + d), 'bf16', O.subarray(dst, dst + d));
    }
  }
}
