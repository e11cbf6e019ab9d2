import type { MoeRouteOptions } from '../../contract/mixers.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import { grid } from './launch.js';
import * as W from './wgsl.gen.js';

const ROUTE = kernel(W.moeRoute, 'route', { name: 'moeRoute' });
const ACCUMULATE = kernel(W.moeAccumulate, 'accumulate', { name: 'moeAccumulate' });

const ROUTING = { 'topk-softmax': 0, 'softmax-topk': 1, sigmoid: 2 } as const;

/** A mixture of experts' router as dense weights (moe-route.wgsl): one thread per row. */
export function moeRoute(
  bk: KernelHost,
  weights: Tensor,
  logits: Tensor,
  bias: Tensor | null,
  o: MoeRouteOptions,
  m: number,
  E: number,
): void {
  if (m === 0) return;
  const routing = ROUTING[o.routing];
  const hasBias = routing === 2 && bias !== null;
  const pipe = bk.d.pipe(`moeRoute:${routing}:${hasBias}`, ROUTE, { ROUTING: routing, HAS_BIAS: hasBias ? 1 : 0 });
  const [gx, gy] = grid(m, 64);
  bk.d.run(
    pipe,
    { logits: bk.buf(logits), bias: hasBias ? bk.buf(bias) : bk.dummyR, w: bk.buf(weights) },
    {
      m,
      E,
      k: o.topK,
      norm: o.normTopk ? 1 : 0,
      scaling: o.scaling,
      groups: o.nGroup,
      keep: o.topkGroup,
      loff: logits.offset,
      lld: logits.ld,
      boff: hasBias ? bias.offset : 0,
      woff: weights.offset,
      wld: weights.ld,
    },
    gx,
    gy,
  );
}

/** out += weights[:, expert] ⊙ y (moe-accumulate.wgsl): one thread per element. */
export function moeAccumulate(
  bk: KernelHost,
  out: Tensor,
  y: Tensor,
  weights: Tensor,
  expert: number,
  m: number,
  d: number,
): void {
  if (m * d === 0) return;
  const pipe = bk.d.pipe('moeAccumulate', ACCUMULATE, {});
  const [gx, gy] = grid(m * d);
  bk.d.run(
    pipe,
    { y: bk.buf(y), weights: bk.buf(weights), o: bk.buf(out) },
    {
      m,
      d,
      expert,
      yoff: y.offset,
      yld: y.ld,
      woff: weights.offset,
      wld: weights.ld,
      ooff: out.offset,
      old: out.ld,
    },
    gx,
    gy,
  );
}
