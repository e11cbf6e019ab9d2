import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import type { SamplingParams } from '../../src/backend/sampling.js';
import { rng } from '../helpers/compare.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { upload, type Pair } from './pair.js';

after(disposeGpu);

/** Logits like a language model's: a few large, many small; `quantum` > 0 rounds them to create ties. */
function logits(b: number, V: number, seed: number, quantum = 0): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(b * V);
  for (let i = 0; i < x.length; i++) {
    let v = (r() - 0.5) * 8 + (r() < 0.02 ? 6 * r() : 0);
    if (quantum) v = Math.round(v / quantum) * quantum;
    x[i] = v;
  }
  return x;
}

function combos(tied: boolean): SamplingParams[] {
  const out: SamplingParams[] = [];
  let seed = 1;
  // With tied logits, top-p values that no sum of tied probabilities can hit exactly: at an exact
  // tie with the threshold the CPU's f64 running sum decides by its rounding (0.1 * 9 < 0.9), while
  // the GPU's fixed-point sums are exact.
  const topPs = tied ? [1, 0.8737, 0.3141] : [1, 0.9, 0.3];
  for (const temperature of [0, 0.7, 1.5]) {
    for (const topK of [0, 1, 7, 60]) {
      for (const topP of topPs) {
        for (const minP of [0, 0.05]) {
          for (const repetitionPenalty of [1, 1.3]) {
            if (temperature === 0 && (topK || topP < 1 || minP)) continue; // greedy ignores them
            out.push({ temperature, topK, topP, minP, repetitionPenalty, seed: seed++ * 7919 });
          }
        }
      }
    }
  }
  return out;
}

for (const [V, quantum] of [
  [1000, 0],
  [257, 0],
  [300, 0.5],
] as const) {
  test(`sample: the same ids as the CPU Sampler for every parameter combination (V ${V}${quantum ? ', tied logits' : ''})`, async (t) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const b = 2,
      steps = 2;
    const c = cpu();
    const seenInit = new Int32Array(b * V);
    const r = rng(V);
    for (let i = 0; i < seenInit.length; i++) seenInit[i] = r() < 0.05 ? 1 : 0;
    const sup = new Int32Array(V);
    sup[3] = 1;
    sup[V - 1] = 1;
    const all = combos(quantum > 0);
    // every draw writes its own window of one output row, read once at the end
    const outs = upload(g, new Int32Array(all.length * steps * b), [1, all.length * steps * b]);
    const seens: (Pair | null)[] = [];
    for (let k = 0; k < all.length; k++) {
      const p = all[k];
      const L = upload(g, logits(b, V, 100 + k, quantum), [b, V]);
      const seen: Pair | null = k % 2 ? upload(g, seenInit.slice(), [b, V]) : null;
      const suppress: Pair | null = k % 3 === 0 ? upload(g, sup, [V]) : null;
      seens.push(seen);
      for (let step = 0; step < steps; step++) {
        const j = (k * steps + step) * b;
        c.sample({
          out: outs.c.narrow(j, b),
          logits: L.c,
          params: p,
          step,
          seen: seen?.c ?? null,
          suppress: suppress?.c ?? null,
        });
        g.sample({
          out: outs.g.narrow(j, b),
          logits: L.g,
          params: p,
          step,
          seen: seen?.g ?? null,
          suppress: suppress?.g ?? null,
        });
      }
    }
    const x = await g.read(outs.g);
    const y = await c.read(outs.c);
    for (let k = 0; k < all.length; k++) {
      const j = k * steps * b;
      assert.deepEqual(
        Array.from(x.subarray(j, j + steps * b)),
        Array.from(y.subarray(j, j + steps * b)),
        `ids differ for ${JSON.stringify(all[k])} (steps x rows)`,
      );
      const seen = seens[k];
      if (seen)
        assert.deepEqual(await g.read(seen.g), await c.read(seen.c), `seen mask after ${JSON.stringify(all[k])}`);
    }
  });
}

test('sample: draws follow the distribution (frequencies over many seeds match the softmax)', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  // 4 tokens with probabilities 0.1, 0.2, 0.3, 0.4 at temperature 1; 256 rows share them.
  const V = 4,
    b = 32;
  const row = [0.1, 0.2, 0.3, 0.4].map(Math.log);
  const x = new Float32Array(b * V);
  for (let i = 0; i < b; i++) x.set(row, i * V);
  const L = g.upload(x, [b, V]);
  const out = g.alloc([b], 'i32');
  const counts = [0, 0, 0, 0];
  for (let step = 0; step < 32; step++) {
    g.sample({
      out,
      logits: L,
      params: { temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 5 },
      step,
    });
    for (const id of await g.read(out)) counts[id]++;
  }
  const n = b * 32;
  counts.forEach((cnt, i) =>
    assert.ok(Math.abs(cnt / n - (i + 1) / 10) < 0.05, `token ${i}: frequency ${cnt / n}, expected ${(i + 1) / 10}`),
  );
});
