import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sampler, type SamplingParams } from '../../src/backend/sampling.js';
import { ReferenceSampler } from '../../src/backend/sampling-reference.js';
import { TokenSampler, type SequenceSampling } from '../../src/server/token-sampler.js';

// The fused sampler (backend/sampling.ts: a few passes, a partial sort for top-p) against the
// one-pass-per-step reference (backend/sampling-reference.ts): the same token, for every setting, on
// random logits; and the server's TokenSampler against its earlier form over the reference.

/** A deterministic generator of floats in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

type Shape = 'normal' | 'peaked' | 'flat' | 'ties' | 'masked';

/** Logits of one of a few shapes: spread like a model's, one dominant token, near uniform, many ties, some -Inf. */
function logitsOf(V: number, shape: Shape, rnd: () => number): Float32Array {
  const x = new Float32Array(V);
  for (let i = 0; i < V; i++) {
    const g = (rnd() + rnd() + rnd() - 1.5) * 4; // roughly normal, sd 2
    if (shape === 'normal') x[i] = g;
    else if (shape === 'peaked') x[i] = g - (i === V >> 1 ? -25 : 0);
    else if (shape === 'flat') x[i] = rnd() * 0.01;
    else if (shape === 'ties')
      x[i] = Math.round(g); // few distinct values: ties everywhere
    else x[i] = rnd() < 0.3 ? -Infinity : g;
  }
  return x;
}

const SHAPES: Shape[] = ['normal', 'peaked', 'flat', 'ties', 'masked'];

function* settings(): Generator<SamplingParams> {
  for (const temperature of [0, 0.3, 0.8, 1, 1.7])
    for (const topK of [0, 1, 5, 40])
      for (const topP of [1, 0.95, 0.5, 0.1, 0.999999])
        for (const minP of [0, 0.05, 0.5])
          for (const repetitionPenalty of [1, 1.3, 0.7])
            yield { temperature, topK, topP, minP, repetitionPenalty, seed: 11 };
}

test('the fused sampler picks what the reference picks: every setting, several shapes of logits', () => {
  const V = 300;
  const rnd = lcg(5);
  const fused = new Sampler(),
    ref = new ReferenceSampler();
  let checked = 0;
  const picked = new Set<number>();
  for (const p of settings()) {
    for (const shape of SHAPES) {
      const x = logitsOf(V, shape, rnd);
      const off = 3; // rows that start inside a larger buffer
      const buf = new Float32Array(V + 7);
      buf.set(x, off);
      // repeated and out-of-range ids: the penalty applies once per distinct id in range
      const seen = [7, 7, 250, 1, V + 4, -1, 150, 7];
      for (const row of [0, 2]) {
        for (const step of [0, 9]) {
          const a = fused.sample(buf, off, V, { ...p, seed: step * 31 + row }, seen, row, step);
          const b = ref.sample(buf, off, V, { ...p, seed: step * 31 + row }, seen, row, step);
          assert.equal(a, b, `${JSON.stringify(p)} ${shape} row ${row} step ${step}`);
          picked.add(a);
          checked++;
        }
      }
    }
  }
  assert.ok(checked > 10000);
  assert.ok(picked.size > 50, `only ${picked.size} distinct tokens drawn: the draws are not exercised`);
});

test('the fused sampler on the vocabulary of the shipped model, with top-p thresholds hit and missed', () => {
  const V = 2048;
  const rnd = lcg(9);
  const fused = new Sampler(),
    ref = new ReferenceSampler();
  for (let trial = 0; trial < 200; trial++) {
    const x = logitsOf(V, SHAPES[trial % SHAPES.length], rnd);
    const p: SamplingParams = {
      temperature: [0.8, 1, 2.5][trial % 3],
      topK: 0,
      topP: [0.9, 0.95, 0.99, 0.999999, 1][trial % 5],
      minP: trial % 4 === 0 ? 0.05 : 0,
      repetitionPenalty: 1,
      seed: trial,
    };
    for (let step = 0; step < 5; step++) {
      assert.equal(fused.sample(x, 0, V, p, null, 1, step), ref.sample(x, 0, V, p, null, 1, step));
    }
  }
});

test('logits the fused passes leave to the reference: NaN, +Infinity, all -Infinity, overflow of x / T', () => {
  const fused = new Sampler(),
    ref = new ReferenceSampler();
  const cases = [
    Float32Array.from([0, NaN, 1, 2]),
    Float32Array.from([NaN, 0, 1, 2]),
    Float32Array.from([0, Infinity, 1, 2]),
    Float32Array.from([-Infinity, -Infinity, -Infinity, -Infinity]),
    Float32Array.from([3e38, 1, 2, 3e38]),
  ];
  for (const x of cases) {
    for (const temperature of [0, 1e-300, 0.5, 1]) {
      const p = { temperature, topK: 0, topP: 0.9, minP: 0, repetitionPenalty: 1, seed: 3 };
      assert.equal(fused.sample(x, 0, 4, p, null, 0, 0), ref.sample(x, 0, 4, p, null, 0, 0), `${x} T ${temperature}`);
    }
  }
  const p = { temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 3 };
  assert.equal(fused.sampleFinite(cases[0], 0, 4, p, null, 0, 0), -1);
  assert.equal(fused.sampleFinite(cases[1], 0, 4, { ...p, temperature: 0 }, null, 0, 0), -1);
  assert.equal(fused.sampleFinite(cases[2], 0, 4, p, null, 0, 0), ref.sample(cases[2], 0, 4, p, null, 0, 0));
});

/** TokenSampler.next as it was before the fused sampler: copy, penalties, a NaN pass, the reference. */
class OldTokenSampler {
  private readonly sampler = new ReferenceSampler();
  private readonly counts = new Map<number, number>();
  private buf = new Float32Array(0);
  readonly seen: number[];
  step = 0;
  constructor(
    readonly params: SequenceSampling,
    prompt: readonly number[],
    private readonly row: number,
    private readonly suppress: readonly number[],
  ) {
    this.seen = [...prompt];
  }
  next(logits: ArrayLike<number>, off: number, V: number): number {
    const p = this.params;
    let data = logits,
      o = off;
    if (this.suppress.length || (this.counts.size && (p.presencePenalty || p.frequencyPenalty))) {
      if (this.buf.length < V) this.buf = new Float32Array(V);
      const x = this.buf;
      for (let i = 0; i < V; i++) x[i] = logits[off + i];
      for (const [t, c] of this.counts) x[t] = x[t] - p.presencePenalty - p.frequencyPenalty * c;
      for (const t of this.suppress) if (t >= 0 && t < V) x[t] = -Infinity;
      data = x;
      o = 0;
    }
    for (let i = 0; i < V; i++) if (Number.isNaN(data[o + i])) return -1;
    const tok = this.sampler.sample(data, o, V, p, p.repetitionPenalty !== 1 ? this.seen : null, this.row, this.step);
    this.step++;
    this.seen.push(tok);
    this.counts.set(tok, (this.counts.get(tok) ?? 0) + 1);
    return tok;
  }
}

test('TokenSampler draws what it drew before: penalties, suppressed ids, several choices (n > 1)', () => {
  const V = 512;
  const rnd = lcg(21);
  const prompt = [3, 9, 9, 400];
  const variants: Partial<SequenceSampling>[] = [
    {},
    { temperature: 0 },
    { presencePenalty: 0.8, frequencyPenalty: 0.3 },
    { temperature: 0, presencePenalty: 1.5 },
    { repetitionPenalty: 1.4, topP: 0.8 },
    { topK: 20, minP: 0.1, frequencyPenalty: -0.5 },
    { temperature: 1.3, topP: 0.6, presencePenalty: 0.4, repetitionPenalty: 0.9 },
  ];
  for (const v of variants) {
    const p: SequenceSampling = {
      temperature: 0.8,
      topK: 0,
      topP: 1,
      minP: 0,
      repetitionPenalty: 1,
      presencePenalty: 0,
      frequencyPenalty: 0,
      seed: 1234,
      ...v,
    };
    for (const suppress of [[], [0, 5, V + 3]]) {
      for (let choice = 0; choice < 3; choice++) {
        const now = new TokenSampler(p, prompt, choice, suppress),
          before = new OldTokenSampler(p, prompt, choice, suppress);
        for (let step = 0; step < 40; step++) {
          // peaked logits: a few tokens recur, so the count-based penalties change the draws
          const x = logitsOf(V, step % 3 === 0 ? 'normal' : 'ties', rnd);
          for (let i = 0; i < 8; i++) x[i * 7] += 6;
          assert.equal(now.next(x, 0, V), before.next(x, 0, V), `${JSON.stringify(v)} choice ${choice} step ${step}`);
        }
        assert.deepEqual(now.seen, before.seen);
      }
    }
  }
  const nan = Float32Array.from([0, 1, NaN, 2]);
  for (const v of variants) {
    const full: SequenceSampling = {
      temperature: 0.8,
      topK: 0,
      topP: 1,
      minP: 0,
      repetitionPenalty: 1,
      presencePenalty: 0,
      frequencyPenalty: 0,
      seed: 1,
      ...v,
    };
    assert.equal(new TokenSampler(full, [], 0, []).next(nan, 0, 4), -1);
  }
});
