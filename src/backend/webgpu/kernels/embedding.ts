import type { Tensor } from '../../../tensor/tensor.js';
import type { WebGpuBackend } from '../webgpu-backend.js';
import { dcode, rowsGrid } from './launch.js';
import * as W from './wgsl.gen.js';

const EMBEDDING = { name: 'embedding', code: W.embedding, access: 'rrw' };

export function embedding(bk: WebGpuBackend, out: Tensor, ids: Tensor, table: Tensor, m: number, d: number): void {
  if (m === 0 || d === 0) return;
  const t = dcode(table.dtype);
  const pipe = bk.d.pipe(`embedding:${t}`, EMBEDDING, { T: t });
  bk.d.params().u(m).u(d).u(ids.offset).u(table.offset).u(table.ld).u(out.offset).u(out.ld);
  const [y, z] = rowsGrid(m);
  bk.d.run(pipe, [bk.buf(ids), bk.buf(table), bk.buf(out)], Math.ceil(d / 256), y, z);
}
