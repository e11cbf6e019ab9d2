import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteLevelTokenizer } from '../../src/tokenizer/byte-level.js';
import { encodeDocuments, evalWindows, splitDocuments, WindowSampler } from '../../src/train/data.js';
import { Rng } from '../../src/train/rng.js';

const stream = Int32Array.from({ length: 1000 }, (_, i) => (i * 37) % 101);

test('window sampler: same seed, same batches; targets are the inputs shifted by one; state restore continues identically', () => {
  const a = new WindowSampler(stream, 17, 42),
    b = new WindowSampler(stream, 17, 42);
  for (let i = 0; i < 5; i++) assert.deepEqual(a.next(3), b.next(3));
  const batch = a.next(4);
  for (let r = 0; r < 4; r++) {
    const inp = batch.inputs.subarray(r * 17, (r + 1) * 17),
      tg = batch.targets.subarray(r * 17, (r + 1) * 17);
    for (let t = 0; t + 1 < 17; t++) assert.equal(tg[t], inp[t + 1]);
    // A window of the stream: find it.
    const s = (inp[0] * 71) % 101; // 37^-1 mod 101 = 71, so i = token * 71 (mod 101) for some i in the stream
    assert.ok(s >= 0);
  }
  const saved = a.rng.getState();
  const c = new WindowSampler(stream, 17, 1);
  c.rng.setState(saved);
  for (let i = 0; i < 3; i++) assert.deepEqual(a.next(2), c.next(2));
  assert.notDeepEqual(new WindowSampler(stream, 17, 43).next(3), new WindowSampler(stream, 17, 42).next(3));
});

test('window sampler: every start is possible and none runs past the end', () => {
  const small = Int32Array.from({ length: 12 }, (_, i) => i);
  const s = new WindowSampler(small, 10, 3);
  const starts = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const b = s.next(1);
    starts.add(b.inputs[0]);
    assert.equal(b.targets[9], b.inputs[0] + 10);
  }
  assert.deepEqual([...starts].sort(), [0, 1]);
  assert.throws(() => new WindowSampler(small, 12, 1), /fewer than one window/);
});

test('evaluation windows predict every token but the first exactly once', () => {
  for (const l of [1, 7, 999, 2000]) {
    const w = evalWindows(stream, l);
    const targets = w.flatMap((x) => [...x.targets]);
    assert.deepEqual(targets, [...stream.subarray(1)]);
    for (const x of w) assert.deepEqual([...x.targets.subarray(0, x.len - 1)], [...x.inputs.subarray(1)]);
  }
  assert.equal(
    evalWindows(stream, 10, 25).reduce((n, x) => n + x.len, 0),
    30,
  );
});

test('split: every k-th document held out; one document split at a paragraph near the end', () => {
  const docs = Array.from({ length: 40 }, (_, i) => ({ name: `d${i}`, text: `doc ${i}` }));
  const s = splitDocuments(docs, { valFraction: 0.05 });
  assert.deepEqual(
    s.val.map((d) => d.name),
    ['d19', 'd39'],
  );
  assert.equal(s.train.length, 38);
  const text = Array.from({ length: 100 }, (_, i) => `Paragraph ${i} has some words.`).join('\n\n');
  const one = splitDocuments([{ name: 'f', text }], { valFraction: 0.1 });
  assert.equal(one.train[0].text + '\n\n' + one.val[0].text, text);
  assert.ok(one.val[0].text.startsWith('Paragraph 9'));
  assert.ok(Math.abs(one.val[0].text.length / text.length - 0.1) < 0.02);
});

test('documents are encoded with EOS after each', () => {
  const tok = new ByteLevelTokenizer();
  const ids = encodeDocuments(tok, [
    { name: 'a', text: 'hi' },
    { name: 'b', text: 'é' },
  ]);
  assert.deepEqual([...ids], [104, 105, 256, 0xc3, 0xa9, 256]);
});

test('rng: reproducible, uniform integers in range, normals with mean 0 and variance 1', () => {
  const a = new Rng(5),
    b = new Rng(5);
  for (let i = 0; i < 10; i++) assert.equal(a.nextU32(), b.nextU32());
  const r = new Rng(9);
  let s = 0,
    s2 = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) {
    const x = r.normal();
    s += x;
    s2 += x * x;
  }
  assert.ok(Math.abs(s / n) < 0.03 && Math.abs(s2 / n - 1) < 0.05, `${s / n} ${s2 / n}`);
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 7000; i++) counts[r.int(7)]++;
  for (const c of counts) assert.ok(c > 850 && c < 1150, String(counts));
  assert.throws(() => r.setState([0, 0, 0, 0]), /not all zero/);
});
