import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { dcode, q4Scales, rowsGrid } from './launch.js';
import * as W from './wgsl.gen.js';

const EMBEDDING = kernel(W.embedding, 'main');

export function embedding(bk: KernelHost, out: Tensor, ids: Tensor, table: Tensor, m: number, d: number): void {
  if (m === 0 || d === 0) return;
  const t = dcode(table.dtype);
  const pipe = bk.d.pipe(`embedding:${t}`, EMBEDDING, { T: t });
  const [y, z] = rowsGrid(m);
  const params = {
    m,
    d,
    ioff: ids.offset,
    toff: table.offset,
    tld: table.ld,
    ooff: out.offset,
    old: out.ld,
    tsoff: q4Scales(table),
  };
  bk.d.run(pipe, { ids: bk.buf(ids), table: bk.buf(table), o: bk.buf(out) }, params, Math.ceil(d / 256), y, z);
}
