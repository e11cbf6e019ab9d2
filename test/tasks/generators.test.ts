import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isMambaError } from '../../src/errors.js';
import { Rng } from '../../src/mixers/init.js';
import {
  generate,
  inductionHeads,
  modularAddition,
  mqar,
  parity,
  selectiveCopying,
  TASKS,
} from '../../src/tasks/generators.js';

/** The task generators: deterministic from a seed, and every example has the structure its task defines. */

test('every generator is a pure function of its seed', () => {
  const s = { seqLen: 64, vocabSize: 32, count: 4 };
  for (const task of TASKS) {
    const a = generate(task, new Rng(5), 3, s),
      b = generate(task, new Rng(5), 3, s),
      c = generate(task, new Rng(6), 3, s);
    assert.deepEqual(a.inputs, b.inputs, task);
    assert.deepEqual(a.targets, b.targets, task);
    assert.notDeepEqual(a.inputs, c.inputs, task);
    assert.equal(a.inputs.length, 3 * 64);
  }
});

test('selective copying: M data tokens among noise in order, then M markers whose targets are those tokens', () => {
  const [l, V, M] = [40, 16, 16];
  const { inputs, targets, batch } = selectiveCopying(new Rng(1), 50, { seqLen: l, vocabSize: V, count: M });
  const firstPositions = new Set<number>();
  for (let b = 0; b < batch; b++) {
    const x = inputs.subarray(b * l, (b + 1) * l),
      y = targets.subarray(b * l, (b + 1) * l);
    const data: number[] = [];
    for (let t = 0; t < l - M; t++) {
      assert.equal(y[t], -1);
      if (x[t] !== 0) {
        assert.ok(x[t] >= 1 && x[t] <= V - 2, `data token ${x[t]}`);
        data.push(x[t]);
        if (data.length === 1) firstPositions.add(t);
      }
    }
    assert.equal(data.length, M, 'exactly M data tokens');
    for (let i = 0; i < M; i++) {
      assert.equal(x[l - M + i], V - 1, 'marker');
      assert.equal(y[l - M + i], data[i], 'target = i-th data token');
    }
  }
  assert.ok(firstPositions.size > 3, 'the data tokens are spread, not fixed');
});

test('induction heads: one earlier special token followed by the key, the special token last, the key as its only target', () => {
  for (const l of [3, 16, 300]) {
    const V = 16;
    const { inputs, targets } = inductionHeads(new Rng(l), 40, { seqLen: l, vocabSize: V, count: 1 });
    const keys = new Set<number>();
    for (let b = 0; b < 40; b++) {
      const x = inputs.subarray(b * l, (b + 1) * l),
        y = targets.subarray(b * l, (b + 1) * l);
      const specials = [...x].flatMap((v, t) => (v === V - 1 ? [t] : []));
      assert.equal(specials.length, 2, 'the special token appears twice');
      assert.equal(specials[1], l - 1);
      const p = specials[0];
      assert.ok(p <= l - 3);
      assert.ok(x[p + 1] < V - 1, 'the key is an ordinary token');
      assert.equal(y[l - 1], x[p + 1]);
      assert.equal([...y].filter((v) => v >= 0).length, 1);
      keys.add(x[p + 1]);
    }
    if (l > 3) assert.ok(keys.size > 5, 'keys vary');
  }
});

test('MQAR: distinct keys and values from their halves of the vocabulary, each key queried once at an even offset, queries bunched near the context', () => {
  const [l, V, D] = [64, 64, 8];
  const { inputs, targets, batch } = mqar(new Rng(2), 200, { seqLen: l, vocabSize: V, count: D });
  let gapSum = 0;
  for (let b = 0; b < batch; b++) {
    const x = inputs.subarray(b * l, (b + 1) * l),
      y = targets.subarray(b * l, (b + 1) * l);
    const kv = new Map<number, number>();
    for (let i = 0; i < D; i++) {
      const k = x[2 * i],
        v = x[2 * i + 1];
      assert.ok(k >= 1 && k < V / 2 && v >= V / 2 && v < V, `pair ${k} ${v}`);
      assert.ok(!kv.has(k), 'distinct keys');
      kv.set(k, v);
      assert.equal(y[2 * i], -1);
      assert.equal(y[2 * i + 1], -1);
    }
    assert.equal(new Set(kv.values()).size, D, 'distinct values');
    const asked = new Set<number>();
    for (let t = 2 * D; t < l; t++) {
      if (y[t] >= 0) {
        assert.equal((t - 2 * D) % 2, 0, 'queries at even offsets');
        assert.equal(kv.get(x[t]), y[t], "the target is the queried key's value");
        asked.add(x[t]);
        gapSum += (t - 2 * D) / 2;
      } else assert.ok(x[t] >= 0 && x[t] < V);
    }
    assert.equal(asked.size, D, 'every key queried once');
  }
  // Uniform offsets over (l − 2D)/2 = 24 slots would average 11.5; the power law (a = 0.01) pulls them down.
  assert.ok(gapSum / (batch * D) < 9, `mean query offset ${gapSum / (batch * D)}`);
});

test('parity: random bits, every position scored with the parity of the bits so far', () => {
  const { inputs, targets, batch, length } = parity(new Rng(3), 20, { seqLen: 33, vocabSize: 2, count: 1 });
  let ones = 0;
  for (let b = 0; b < batch; b++) {
    let acc = 0;
    for (let t = 0; t < length; t++) {
      const x = inputs[b * length + t];
      assert.ok(x === 0 || x === 1);
      ones += x;
      acc ^= x;
      assert.equal(targets[b * length + t], acc);
    }
  }
  assert.ok(ones > 0.4 * batch * length && ones < 0.6 * batch * length, `${ones} ones`);
  assert.throws(
    () => parity(new Rng(1), 1, { seqLen: 8, vocabSize: 1, count: 1 }),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /at least 2/.test((e as Error).message),
  );
});

test('modular addition: digits 0 .. m-1, every position scored with their running sum modulo m', () => {
  const m = 5;
  const { inputs, targets, batch, length } = modularAddition(new Rng(4), 24, { seqLen: 31, vocabSize: 7, count: m });
  const seen = new Array<number>(m).fill(0);
  for (let b = 0; b < batch; b++) {
    let acc = 0;
    for (let t = 0; t < length; t++) {
      const x = inputs[b * length + t];
      assert.ok(Number.isInteger(x) && x >= 0 && x < m, `digit ${x}`);
      seen[x]++;
      acc = (acc + x) % m;
      assert.equal(targets[b * length + t], acc);
    }
  }
  // 744 uniform digits: each of the 5 about 149 times
  for (const c of seen) assert.ok(c > 100 && c < 200, `digit counts ${seen}`);
  assert.deepEqual(
    modularAddition(new Rng(4), 24, { seqLen: 31, vocabSize: 7, count: m }).inputs,
    inputs,
    'the same seed gives the same examples',
  );
  assert.throws(
    () => modularAddition(new Rng(1), 1, { seqLen: 8, vocabSize: 4, count: 5 }),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /vocabulary of at least 5/.test((e as Error).message),
  );
  assert.throws(
    () => modularAddition(new Rng(1), 1, { seqLen: 8, vocabSize: 4, count: 1 }),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /at least 2/.test((e as Error).message),
  );
});

test('settings that cannot hold the task are clear errors', () => {
  assert.throws(
    () => selectiveCopying(new Rng(1), 1, { seqLen: 20, vocabSize: 16, count: 16 }),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT'),
  );
  assert.throws(
    () => inductionHeads(new Rng(1), 1, { seqLen: 2, vocabSize: 16, count: 1 }),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT'),
  );
  assert.throws(
    () => mqar(new Rng(1), 1, { seqLen: 64, vocabSize: 16, count: 8 }),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /vocabulary/.test((e as Error).message),
  );
  assert.throws(
    () => mqar(new Rng(1), 1, { seqLen: 30, vocabSize: 64, count: 8 }),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT'),
  );
});
