import type { AttentionArgs, RotaryOptions } from '../../contract/mixers.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { fail } from '../../../errors.js';
import { kernel } from '../bindings.js';
import type { GpuStorage } from '../gpu-buffers.js';
import type { KernelHost } from '../kernel-host.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const ATTENTION = kernel(W.attention, 'main', { name: 'attention' });
const ATTENTION_ROWS = kernel(W.attention, 'rows', { name: 'attention' });
const SPLIT = kernel(W.attentionSplit, 'split', { name: 'attention-split' });
const SPLIT_ROWS = kernel(W.attentionSplit, 'splitRows', { name: 'attention-split' });
const SPLIT_COMBINE = kernel(W.attentionSplit, 'combine', { name: 'attention-split' });
const ROTARY = kernel(W.rotary, 'main', { name: 'rotary' });
const ROTARY_INPLACE = kernel(W.rotary, 'inplace', { name: 'rotary' });

/** Widest value head the attention kernel accumulates (4 columns per thread of 64). */
const MAX_DV = 256;

/** Causal GQA attention over a KV cache (attention.wgsl): one workgroup per (sequence, query, head). */
export function attention(
  bk: KernelHost,
  a: AttentionArgs,
  d: { b: number; lq: number; lk: number; H: number; G: number; dk: number; dv: number; keys: number },
): void {
  if (d.dv > MAX_DV)
    fail('UNSUPPORTED', `attention on WebGPU: value heads of width ${d.dv} exceed the kernel's ${MAX_DV}`);
  const n = d.b * d.lq * d.H;
  if (n === 0) return;
  const [gx, gy] = grid(n, 1);
  const params = {
    b: d.b,
    lq: d.lq,
    lk: d.lk,
    H: d.H,
    G: d.G,
    dk: d.dk,
    dv: d.dv,
    keys: d.keys,
    scale: a.scale,
    qoff: a.q.offset,
    qld: a.q.ld,
    koff: a.k.offset,
    kld: a.k.ld,
    voff: a.v.offset,
    vld: a.v.ld,
    ooff: a.out.offset,
    old: a.out.ld,
    loff: 0,
  };
  const bufs = { q: bk.buf(a.q), k: bk.buf(a.k), v: bk.buf(a.v), o: bk.buf(a.out) };
  const spans = splitSpans(n, d.keys);
  if (spans) {
    attentionSplit(bk, a, params, bufs, n, spans);
    return;
  }
  if (a.rowKeys) {
    // a key count per sequence: the `rows` entry reads them (contiguous (b): checkAttention's shape)
    const rows = { ...params, loff: a.rowKeys.offset };
    bk.d.run(bk.d.pipe('attention:rows', ATTENTION_ROWS, {}), { ...bufs, lens: bk.buf(a.rowKeys) }, rows, gx, gy);
    return;
  }
  bk.d.run(bk.d.pipe('attention', ATTENTION, {}), bufs, params, gx, gy);
}

/** The uniform block of attention.wgsl (attention-split.wgsl adds S and chunk). */
type AttentionParams = Record<
  'b' | 'lq' | 'lk' | 'H' | 'G' | 'dk' | 'dv' | 'keys' | 'scale' | 'qoff' | 'qld' | 'koff' | 'kld' | 'voff' | 'vld',
  number
> &
  Record<'ooff' | 'old' | 'loff', number>;

/** Workgroups a split-K launch aims for: enough to spread over the cores of a large GPU. */
const SPLIT_TARGET = 256;

/**
 * The key spans of a split-K launch (attention-split.wgsl), or undefined for the one-pass kernel: split
 * where the (sequence, query, head) rows are too few to fill the GPU (decode: b·H rows) and their keys
 * span more than one tile of 64. `keys` is the largest count (a per-sequence count is at most it).
 */
export function splitSpans(rows: number, keys: number): { S: number; chunk: number } | undefined {
  const tiles = Math.ceil(keys / 64);
  if (rows >= SPLIT_TARGET / 4 || tiles < 2) return undefined;
  const want = Math.min(tiles, Math.ceil(SPLIT_TARGET / rows));
  const chunk = 64 * Math.ceil(tiles / want); // whole tiles per span
  return { S: Math.ceil(keys / chunk), chunk };
}

/** Split-K attention: each (row, span) a workgroup writing a partial, then one combine per row. */
function attentionSplit(
  bk: KernelHost,
  a: AttentionArgs,
  params: AttentionParams,
  bufs: { q: GpuStorage; k: GpuStorage; v: GpuStorage; o: GpuStorage },
  n: number,
  { S, chunk }: { S: number; chunk: number },
): void {
  const dv = params.dv;
  const part = bk.scratch(4 * n * S * (dv + 2));
  const p = { ...params, S, chunk, loff: a.rowKeys ? a.rowKeys.offset : 0 };
  const [sx, sy] = grid(n * S, 1);
  const { q, k, v } = bufs;
  // q and k rows on 16-byte boundaries: the dot products in vec4s
  const kv4 = [params.dk, params.qoff, params.qld, params.koff, params.kld].every((x) => x % 4 === 0);
  const o = { KV4: kv4 ? 1 : 0 };
  if (a.rowKeys) {
    const pipe = bk.d.pipe(`attention-split:rows:${kv4}`, SPLIT_ROWS, o);
    bk.d.run(pipe, { q, k, v, lens: bk.buf(a.rowKeys), part }, p, sx, sy);
  } else bk.d.run(bk.d.pipe(`attention-split:${kv4}`, SPLIT, o), { q, k, v, part }, p, sx, sy);
  const [cx, cy] = grid(n, 1);
  bk.d.run(bk.d.pipe('attention-split:combine', SPLIT_COMBINE, {}), { parts: part, o: bufs.o }, p, cx, cy);
  bk.release(part);
}

/** Rotary position embedding (rotary.wgsl): one thread per (row, head, pair); out may be x. */
export function rotary(
  bk: KernelHost,
  out: Tensor,
  x: Tensor,
  o: RotaryOptions,
  d: { b: number; l: number; H: number; dh: number },
): void {
  const rows = d.b * d.l;
  const n = rows * d.H * (d.dh / 2);
  if (n === 0) return;
  const inverse = !!o.inverse;
  const perRow = o.rowStarts ? 1 : 0;
  const [gx, gy] = grid(n);
  const params = {
    rows,
    l: d.l,
    H: d.H,
    dh: d.dh,
    start: o.start,
    log2base: Math.log2(o.base),
    xoff: x.offset,
    xld: x.ld,
    ooff: out.offset,
    old: out.ld,
    soff: o.rowStarts?.offset ?? 0,
  };
  const starts = o.rowStarts ? bk.buf(o.rowStarts) : bk.dummyR;
  if (out.storage === x.storage) {
    // in place (the same elements: the contract's "out may be x")
    if (out.offset !== x.offset || out.ld !== x.ld)
      fail('BAD_ARGUMENT', 'rotary on WebGPU: out and x share a buffer but are different views');
    const pipe = bk.d.pipe(`rotary:inplace:${inverse}:${perRow}`, ROTARY_INPLACE, {
      INVERSE: inverse ? 1 : 0,
      ROWS: perRow,
    });
    bk.d.run(pipe, { o: bk.buf(out), starts }, params, gx, gy);
    return;
  }
  const pipe = bk.d.pipe(`rotary:${inverse}:${perRow}`, ROTARY, { INVERSE: inverse ? 1 : 0, ROWS: perRow });
  bk.d.run(pipe, { x: bk.buf(x), o: bk.buf(out), starts }, params, gx, gy);
}
