import type { KvAppendArgs } from '../../contract/kv-append.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const KV_APPEND = kernel(W.kvAppend, 'main', { name: 'kvAppend' });

/**
 * A decode token's keys (rotated) and values into the KV cache and its counters, and its queries rotated
 * where `q` is given (kv-append.wgsl: k, v and q views of one buffer): one dispatch.
 */
export function kvAppend(bk: KernelHost, a: KvAppendArgs, d: { b: number; cap: number; w: number }): void {
  if (d.b * d.w === 0) return;
  const r = a.rotary;
  const q = r ? a.q : undefined;
  const qheads = q && r ? q.cols / r.headDim : 0;
  const params = {
    b: d.b,
    w: d.w,
    dh: r ? r.headDim : d.w,
    rot: r ? r.dim : 0,
    start: a.rowStarts ? 0 : a.start,
    log2base: r ? Math.log2(r.base) : 0,
    koff: a.k.offset,
    kld: a.k.ld,
    voff: a.v.offset,
    vld: a.v.ld,
    cap: d.cap,
    soff: a.rowStarts?.offset ?? 0,
    loff: a.length.offset,
    qoff: q?.offset ?? 0,
    qld: q?.ld ?? 0,
    qheads,
  };
  const bufs = {
    x: bk.buf(a.k),
    kc: bk.buf(a.kCache),
    vc: bk.buf(a.vCache),
    starts: a.rowStarts ? bk.buf(a.rowStarts) : bk.dummyR,
    len: bk.buf(a.length),
  };
  const rows = a.rowStarts ? 1 : 0,
    qrot = q ? 1 : 0;
  const [x, y] = grid(d.b * d.w + (q && r ? d.b * qheads * (r.dim / 2) : 0));
  bk.d.run(bk.d.pipe(`kvAppend:${rows}:${qrot}`, KV_APPEND, { ROWS: rows, QROT: qrot }), bufs, params, x, y);
}
