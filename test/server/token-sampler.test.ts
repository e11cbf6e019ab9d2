import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sampler } from '../../src/backend/sampling.js';
import { TokenSampler } from '../../src/server/token-sampler.js';

// OpenAI's additive penalties on top of the library's sampler, and the draws keyed by choice index.

const base = {
  temperature: 0,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  seed: 7,
};
const logits = Float32Array.from([0, 1, 3, 2.5, 2.2]);

test("presence and frequency penalties lower the logits of generated tokens (not the prompt's)", () => {
  const plain = new TokenSampler(base, [2], 0, []);
  assert.deepEqual(
    [0, 1, 2].map(() => plain.next(logits, 0, 5)),
    [2, 2, 2],
  );
  // after one 2: 3 - 0.6 = 2.4 < 2.5, so 3; then 2.4 vs 3's 1.9 vs 4's 2.2: 2 (once or many times, the same)
  const presence = new TokenSampler({ ...base, presencePenalty: 0.6 }, [2, 3], 0, []);
  assert.deepEqual(
    [0, 1, 2, 3].map(() => presence.next(logits, 0, 5)),
    [2, 3, 2, 2],
  );
  // frequency: 2 costs 0.4 per use: 3, 2.6 (still > 2.5), 2.2 (< 2.5) -> 2, 2, 3
  const frequency = new TokenSampler({ ...base, frequencyPenalty: 0.4 }, [], 0, []);
  assert.deepEqual(
    [0, 1, 2].map(() => frequency.next(logits, 0, 5)),
    [2, 2, 3],
  );
  const suppressed = new TokenSampler(base, [], 0, [2]);
  assert.equal(suppressed.next(logits, 0, 5), 3);
  assert.equal(new TokenSampler(base, [], 0, []).next(Float32Array.from([0, NaN, 1]), 0, 3), -1);
});

test('without penalties, choice i draws what row i of the library sampler draws', () => {
  const p = { ...base, temperature: 1 };
  const ref = new Sampler();
  for (const row of [0, 1, 3]) {
    const s = new TokenSampler(p, [], row, []);
    for (let step = 0; step < 5; step++) {
      assert.equal(s.next(logits, 0, 5), ref.sample(logits, 0, 5, p, null, row, step));
    }
  }
});
