import type { KvAppendArgs } from '../../contract/kv-append.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const KV_APPEND = kernel(W.kvAppend, 'main', { name: 'kvAppend' });
const KV_APPEND_Q = kernel(W.kvAppendQ, 'main', { name: 'kvAppend+q' });

/**
 * A decode token's keys (rotated) and values into the KV cache and its counters (kv-append.wgsl), and its
 * queries rotated where `q` is given (kv-append-q.wgsl: q, k and v in one buffer): one dispatch.
 */
export function kvAppend(bk: KernelHost, a: KvAppendArgs, d: { b: number; cap: number; w: number }): void {
  if (d.b * d.w === 0) return;
  const rows = a.rowStarts ? 1 : 0;
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
  };
  const [x, y] = grid(d.b * d.w + (q && r ? d.b * qheads * (r.dim / 2) : 0));
  const starts = a.rowStarts ? bk.buf(a.rowStarts) : bk.dummyR;
  const caches = { kc: bk.buf(a.kCache), vc: bk.buf(a.vCache), starts, len: bk.buf(a.length) };
  if (q)
    bk.d.run(
      bk.d.pipe(`kvAppendQ:${rows}`, KV_APPEND_Q, { ROWS: rows }),
      { x: bk.buf(q), ...caches },
      { ...params, qoff: q.offset, qld: q.ld, qheads },
      x,
      y,
    );
  else
    bk.d.run(
      bk.d.pipe(`kvAppend:${rows}`, KV_APPEND, { ROWS: rows }),
      { k: bk.buf(a.k), v: bk.buf(a.v), ...caches },
      params,
      x,
      y,
    );
}
