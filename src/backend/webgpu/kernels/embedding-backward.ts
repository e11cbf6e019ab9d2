import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const EMBEDDING_BACKWARD = kernel(W.embeddingBackward, 'main', { name: 'embeddingBackward' });

/** dTable[ids[i]] += g[i] (dTable (V, d) not cleared; ids range-checked by the forward). */
export function embeddingBackward(bk: KernelHost, dTable: Tensor, ids: Tensor, g: Tensor, m: number, d: number): void {
  if (m === 0 || d === 0) return;
  const pipe = bk.d.pipe('embeddingBackward', EMBEDDING_BACKWARD);
  const [gx, gy] = grid(d, 64);
  const params = { m, d, ioff: ids.offset, toff: dTable.offset, tld: dTable.ld, goff: g.offset, gld: g.ld };
  bk.d.run(pipe, { ids: bk.buf(ids), g: bk.buf(g), table: bk.buf(dTable) }, params, gx, gy);
}
