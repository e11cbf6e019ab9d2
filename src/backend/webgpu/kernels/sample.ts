import { type SampleArgs, checkSample } from '../../contract/decode.js';
import { kernel } from '../bindings.js';
import type { KernelHost } from '../kernel-host.js';
import * as W from './wgsl.gen.js';

const SAMPLE = kernel(W.sample, 'main');

/** One workgroup per row (sample.wgsl); the scratch holds the row's penalised logits, then e_i. */
export function sample(bk: KernelHost, a: SampleArgs): void {
  const { b, V } = checkSample(a);
  if (b === 0) return;
  const p = a.params;
  const scratch = bk.scratch(b * V * 4);
  const topp = p.topP < 1 ? Math.min(0xffffffff, Math.round(p.topP * 2 ** 32)) : 0;
  const seen = a.seen ?? null,
    sup = a.suppress ?? null;
  // a second write-only dummy: one buffer may not be bound twice as writable
  const counter = a.stepCounter ? bk.buf(a.stepCounter) : bk.dummyW2;
  bk.d.run(
    bk.d.pipe('sample', SAMPLE),
    {
      logits: bk.buf(a.logits),
      seen: seen ? bk.buf(seen) : bk.dummyW,
      sup: sup ? bk.buf(sup) : bk.dummyR,
      xs: scratch,
      o: bk.buf(a.out),
      stepc: counter,
    },
    {
      V,
      loff: a.logits.offset,
      lld: a.logits.ld,
      ooff: a.out.offset,
      soff: seen?.offset ?? 0,
      sld: seen?.ld ?? 0,
      supoff: sup?.offset ?? 0,
      has_seen: seen ? 1 : 0,
      has_sup: sup ? 1 : 0,
      seed: p.seed >>> 0,
      step: a.step >>> 0,
      topk: p.topK,
      temp: p.temperature,
      penalty: p.repetitionPenalty,
      minp: p.minP,
      topp_on: p.topP < 1 ? 1 : 0,
      topp,
      scroff: 0,
      has_counter: a.stepCounter ? 1 : 0,
      rows: b,
      coff: a.stepCounter?.offset ?? 0,
    },
    b,
  );
  bk.release(scratch);
}
