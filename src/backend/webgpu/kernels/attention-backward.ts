import type { AttentionBackwardArgs } from '../../contract/mixers.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const STATS = kernel(W.attentionBackward, 'att_stats');
const DQ = kernel(W.attentionBackward, 'att_dq');
const DKV = kernel(W.attentionBackward, 'att_dkv');

/**
 * Causal attention's gradient in three dispatches (attention-backward.wgsl): each row's log-sum-exp
 * and D_i into scratch, then dq, then dk and dv; probabilities recomputed, nothing (l, l) stored.
 * Plain loops (each thread O(l (dk + dv)) work): meant for the synthetic tasks' small models.
 */
export function attentionBackward(
  bk: KernelHost,
  a: AttentionBackwardArgs,
  { b, l, H, dk, dv }: { b: number; l: number; H: number; dk: number; dv: number },
): void {
  const rows = b * l;
  if (rows * H === 0) return;
  const stats = bk.scratch(rows * H * 2 * 4);
  const params = {
    b,
    l,
    H,
    dk,
    dv,
    scale: a.scale,
    qoff: a.q.offset,
    qld: a.q.ld,
    koff: a.k.offset,
    kld: a.k.ld,
    voff: a.v.offset,
    vld: a.v.ld,
    goff: a.g.offset,
    gld: a.g.ld,
    dqoff: a.dq.offset,
    dqld: a.dq.ld,
    dkoff: a.dk.offset,
    dkld: a.dk.ld,
    dvoff: a.dv.offset,
    dvld: a.dv.ld,
  };
  const q = bk.buf(a.q),
    k = bk.buf(a.k),
    v = bk.buf(a.v),
    g = bk.buf(a.g);
  const d = bk.d;
  d.run(d.pipe('attentionBackward.stats', STATS), { q, k, v, g, stats }, params, ...grid(rows * H, 64));
  d.run(
    d.pipe('attentionBackward.dq', DQ),
    { q, k, v, g, st: stats, dq: bk.buf(a.dq) },
    params,
    ...grid(rows * H * dk, 64),
  );
  const dkv = { q, k, v, g, st: stats, dkv: bk.buf(a.dk), dvv: bk.buf(a.dv) };
  d.run(d.pipe('attentionBackward.dkv', DKV), dkv, params, ...grid(rows * H * (dk + dv), 64));
  bk.release(stats);
}
