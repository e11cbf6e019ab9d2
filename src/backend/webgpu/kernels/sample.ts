import { checkSample, type SampleArgs } from '../../contract/decode.js';
import type { WebGpuBackend } from '../webgpu-backend.js';
import * as W from './wgsl.gen.js';

const SAMPLE = { name: 'sample', code: W.sample, access: 'rwrwww' };

/** One workgroup per row (sample.wgsl); the scratch holds the row's penalised logits, then e_i. */
export function sample(bk: WebGpuBackend, a: SampleArgs): void {
  const { b, V } = checkSample(a);
  if (b === 0) return;
  const p = a.params;
  const scratch = bk.scratch(b * V * 4);
  const topp = p.topP < 1 ? Math.min(0xffffffff, Math.round(p.topP * 2 ** 32)) : 0;
  const seen = a.seen ?? null, sup = a.suppress ?? null;
  bk.d.params().u(V).u(a.logits.offset).u(a.logits.ld).u(a.out.offset)
    .u(seen?.offset ?? 0).u(seen?.ld ?? 0).u(sup?.offset ?? 0).u(seen ? 1 : 0)
    .u(sup ? 1 : 0).u(p.seed >>> 0).u(a.step >>> 0).u(p.topK)
    .f(p.temperature).f(p.repetitionPenalty).f(p.minP).u(p.topP < 1 ? 1 : 0)
    .u(topp).u(0).u(a.stepCounter ? 1 : 0).u(b).u(a.stepCounter?.offset ?? 0);
  // a second write-only dummy: one buffer may not be bound twice as writable
  const counter = a.stepCounter ? bk.buf(a.stepCounter) : bk.dummyW2;
  bk.d.run(bk.d.pipe('sample', SAMPLE), [bk.buf(a.logits), seen ? bk.buf(seen) : bk.dummyW, sup ? bk.buf(sup) : bk.dummyR, scratch, bk.buf(a.out), counter], b);
  bk.release(scratch);
}
