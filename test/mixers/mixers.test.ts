import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward } from '../../src/autograd/backward.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { isMambaError } from '../../src/errors.js';
import { GatedMixer } from '../../src/mixers/gated.js';
import { Rng } from '../../src/mixers/init.js';
import { MambaMixer } from '../../src/mixers/mamba.js';
import { initMambaMixer } from '../../src/mixers/mamba-init.js';
import { S6Core } from '../../src/mixers/s6.js';
import * as F from '../../src/ops/ops.js';
import {
  buildTaskModel,
  DEFAULT_TASK_MODEL,
  MIXERS,
  type MixerName,
  type TaskLanguageModel,
  type TaskModelConfig,
} from '../../src/tasks/models.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { f64 } from '../autograd/f64.js';

/**
 * Every mixer in a small two-layer language model on the f64 backend: the parallel form (FFT
 * convolutions, attention over the whole sequence), the recurrent form (one token at a time from a
 * zero state) and chunked prefill with a carried state give the same logits; every parameter's
 * gradient matches central differences; steps allocate nothing after warm-up.
 */
const cfg = (mixer: MixerName): TaskModelConfig => ({
  ...DEFAULT_TASK_MODEL,
  mixer,
  vocabSize: 11,
  dModel: 8,
  nLayer: 2,
  dState: 4,
  heads: 2,
  shift: 3,
  hyenaOrder: 6,
  hyenaBands: 2,
  maxLength: 16,
  maxContext: 40,
});
const ids = (b: number, l: number, seed: number): number[] => {
  const r = new Rng(seed);
  return Array.from({ length: b * l }, () => r.int(11));
};
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

function parallel(m: TaskLanguageModel, tok: number[], b: number, l: number): Float64Array {
  return noGrad(() => f64.read64(m.forward(f64.upload(Int32Array.from(tok), [b, l], 'i32'))));
}

/** Logits (b, l, V) from steps, in the layout of the parallel form. */
function recurrent(m: TaskLanguageModel, tok: number[], b: number, l: number): Float64Array {
  const V = m.vocabSize,
    out = new Float64Array(b * l * V);
  const st = m.initState(b);
  noGrad(() => {
    for (let t = 0; t < l; t++) {
      const logits = f64.read64(
        m.stepIds(
          Array.from({ length: b }, (_, i) => tok[i * l + t]),
          st,
        ),
      );
      for (let i = 0; i < b; i++) out.set(logits.subarray(i * V, (i + 1) * V), (i * l + t) * V);
    }
  });
  return out;
}

/** Logits from forward calls on consecutive chunks with one carried state. */
function chunked(m: TaskLanguageModel, tok: number[], b: number, l: number, cuts: number[]): Float64Array {
  const V = m.vocabSize,
    out = new Float64Array(b * l * V);
  const st = m.initState(b);
  let t0 = 0;
  noGrad(() => {
    for (const cut of [...cuts, l]) {
      const len = cut - t0;
      const part: number[] = [];
      for (let i = 0; i < b; i++) part.push(...tok.slice(i * l + t0, i * l + cut));
      const lg = f64.read64(m.forward(f64.upload(Int32Array.from(part), [b, len], 'i32'), { state: st }));
      for (let i = 0; i < b; i++) out.set(lg.subarray(i * len * V, (i + 1) * len * V), (i * l + t0) * V);
      t0 = cut;
    }
  });
  assert.equal(st.position, l);
  return out;
}

for (const mixer of MIXERS) {
  test(`${mixer}: parallel form == recurrent steps == chunked prefill with a state`, () => {
    const m = buildTaskModel(cfg(mixer), f64, 7);
    const [b, l] = [2, 13];
    const tok = ids(b, l, 3);
    const p = parallel(m, tok, b, l);
    const scale = Math.max(...p.map(Math.abs));
    assert.ok(scale > 1e-3, 'the logits are not trivially zero');
    const r = recurrent(m, tok, b, l);
    assert.ok(maxDiff(p, r) < 1e-9 * Math.max(1, scale), `parallel vs recurrent: ${maxDiff(p, r)}`);
    const c = chunked(m, tok, b, l, [5, 6]);
    assert.ok(maxDiff(p, c) < 1e-9 * Math.max(1, scale), `parallel vs chunked: ${maxDiff(p, c)}`);
  });

  test(`${mixer}: every parameter's gradient matches central differences`, () => {
    const m = buildTaskModel(cfg(mixer), f64, 11);
    const [b, l] = [2, 7];
    const tok = ids(b, l, 5),
      tgt = ids(b, l, 6);
    const params = m.parameters();
    for (const p of params.values()) p.requiresGrad = true;
    const loss = (): Tensor =>
      F.crossEntropy(
        m.forward(f64.upload(Int32Array.from(tok), [b, l], 'i32')),
        f64.upload(Int32Array.from(tgt), [b, l], 'i32'),
      );
    backward(loss());
    const h = 1e-6;
    let worst = 0,
      where = '';
    for (const [name, p] of params) {
      const g = f64.read64(p.grad ?? assert.fail(`${name}: no gradient`));
      const data = p.storage as Float64Array;
      let scale = 1e-3;
      for (const v of g) scale = Math.max(scale, Math.abs(v));
      const step = Math.max(1, Math.floor(p.size / 6));
      for (let i = 0; i < p.size; i += step) {
        const x0 = data[i];
        const at = (v: number): number => {
          data[i] = v;
          m.parametersChanged();
          return noGrad(() => f64.read64(loss())[0]);
        };
        const num = (at(x0 + h) - at(x0 - h)) / (2 * h);
        data[i] = x0;
        m.parametersChanged();
        const err = Math.abs(num - g[i]) / scale;
        if (err > worst) {
          worst = err;
          where = `${name}[${i}]: analytic ${g[i]}, numeric ${num}`;
        }
      }
    }
    assert.ok(worst < 1e-6, `${mixer}: relative error ${worst.toExponential(2)} at ${where}`);
  });
}

test('the Mamba block around the S6 core computes what MambaMixer computes', () => {
  const dims = { d: 6, e: 12, n: 4, k: 4, r: 1 };
  const w = initMambaMixer(f64, new Rng(9), dims, 2);
  const mamba = new MambaMixer(f64, w, dims);
  const gated = new GatedMixer(
    f64,
    { inProj: w.inProj, convWeight: w.convWeight, convBias: w.convBias!, outProj: w.outProj },
    new S6Core(f64, { xProj: w.xProj, dtProj: w.dtProj, dtProjBias: w.dtProjBias, ALog: w.ALog, D: w.D }),
  );
  const x = f64.upload64(
    Float64Array.from({ length: 2 * 9 * 6 }, (_, i) => Math.sin(i * 0.7)),
    [2, 9, 6],
  );
  const a = f64.read64(mamba.forward(x)),
    g = f64.read64(gated.forward(x));
  assert.ok(maxDiff(a, g) < 1e-12, `${maxDiff(a, g)}`);
});

test('steps allocate nothing after the first token, for every mixer', () => {
  for (const mixer of MIXERS) {
    const m = buildTaskModel(cfg(mixer), f64, 13);
    const st = m.initState(2);
    noGrad(() => {
      m.stepIds([1, 2], st);
      m.stepIds([3, 4], st);
      const orig = f64.alloc.bind(f64);
      let n = 0;
      f64.alloc = (shape, dtype) => {
        n++;
        return orig(shape, dtype);
      };
      try {
        for (let t = 0; t < 4; t++) m.stepIds([t, t + 1], st);
      } finally {
        f64.alloc = orig;
      }
      assert.equal(n, 0, `${mixer}: ${n} allocations in 4 steps`);
    });
  }
});

test('a full KV cache or input history is a clear error; a carried state under training is refused', () => {
  for (const mixer of ['attention', 'hyena'] as const) {
    const m = buildTaskModel({ ...cfg(mixer), maxContext: 4 }, f64, 1);
    const st = m.initState(1);
    noGrad(() => {
      for (let t = 0; t < 4; t++) m.stepIds([t], st);
    });
    assert.throws(
      () => noGrad(() => m.stepIds([1], st)),
      (e: unknown) => isMambaError(e, 'STATE_MISMATCH') && /full/.test((e as Error).message),
    );
    const st2 = m.initState(1);
    assert.throws(
      () => noGrad(() => m.forward(f64.upload(Int32Array.from([1, 2, 3, 4, 5]), [1, 5], 'i32'), { state: st2 })),
      (e: unknown) => isMambaError(e, 'STATE_MISMATCH'),
    );
  }
  for (const mixer of ['s4d', 'attention', 'hyena'] as const) {
    const m = buildTaskModel(cfg(mixer), f64, 2);
    for (const p of m.parameters().values()) p.requiresGrad = true;
    assert.throws(
      () => m.forward(f64.upload(Int32Array.from([1, 2]), [1, 2], 'i32'), { state: m.initState(1) }),
      (e: unknown) => isMambaError(e, 'UNSUPPORTED'),
      mixer,
    );
  }
});
