import type { KvAppendArgs } from '../../contract/kv-append.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const KV_APPEND = kernel(W.kvAppend, 'main', { name: 'kvAppend' });

/** A decode token's keys (rotated) and values into the KV cache and its counters (kv-append.wgsl): one dispatch. */
export function kvAppend(bk: KernelHost, a: KvAppendArgs, d: { b: number; cap: number; w: number }): void {
  if (d.b * d.w === 0) return;
  const rows = a.rowStarts ? 1 : 0;
  const r = a.rotary;
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
  };
  const bufs = {
    k: bk.buf(a.k),
    v: bk.buf(a.v),
    kc: bk.buf(a.kCache),
    vc: bk.buf(a.vCache),
    starts: a.rowStarts ? bk.buf(a.rowStarts) : bk.dummyR,
    len: bk.buf(a.length),
  };
  const [x, y] = grid(d.b * d.w);
  bk.d.run(bk.d.pipe(`kvAppend:${rows}`, KV_APPEND, { ROWS: rows }), bufs, params, x, y);
}
