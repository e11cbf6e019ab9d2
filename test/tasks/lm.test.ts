import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { tasksCommand } from '../../src/cli/tasks.js';
import { parseMixerList, type LmRunResult } from '../../src/cli/tasks-lm.js';
import { isMambaError } from '../../src/errors.js';
import { Rng } from '../../src/mixers/init.js';
import {
  bitsPerByte,
  byteCorpus,
  lmBatch,
  lmLearningRate,
  newLmLog,
  trainLmSlice,
  type LmTrainOptions,
} from '../../src/tasks/lm.js';
import { buildTaskModel, DEFAULT_TASK_MODEL } from '../../src/tasks/models.js';
import { taskOptimizer } from '../../src/tasks/train.js';

/** `tasks lm`: the byte corpus split, the batches, the time schedule, bits per byte, and the command end to end. */

const docs = Array.from({ length: 20 }, (_, i) => ({
  name: `d${i}`,
  text: `document ${i}: ${'abcdefgh'.repeat(i + 3)}`,
}));

test('every validEvery-th document is held out, each as UTF-8 bytes followed by a blank line', () => {
  const c = byteCorpus(docs, 10, 'test');
  assert.deepEqual(c.documents, { train: 18, valid: 2 });
  const dec = new TextDecoder();
  assert.equal(dec.decode(c.valid), `${docs[9].text}\n\n${docs[19].text}\n\n`);
  assert.ok(dec.decode(c.train).startsWith(`${docs[0].text}\n\n${docs[1].text}\n\n`));
  assert.ok(!dec.decode(c.train).includes(docs[9].text));
  assert.throws(
    () => byteCorpus(docs, 1, 't'),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT'),
  );
  assert.throws(
    () => byteCorpus(docs.slice(0, 3), 10, 't'),
    (e: unknown) => isMambaError(e, 'EMPTY_INPUT'),
  );
});

test('a batch is windows of the bytes with next-byte targets, the same for the same stream', () => {
  const bytes = Uint8Array.from({ length: 500 }, (_, i) => (i * 7) % 251);
  const a = lmBatch(bytes, new Rng(3).fork(5), 4, 9);
  const b = lmBatch(bytes, new Rng(3).fork(5), 4, 9);
  assert.deepEqual(a, b);
  for (let w = 0; w < 4; w++) {
    const s = bytes.indexOf(a.inputs[w * 9]);
    // (i * 7) % 251 is one-to-one on 0..250: the first input names the window's start (or its repeat at +251)
    const start = [s, s + 251].find((x) => x + 10 <= bytes.length && bytes[x + 1] === a.inputs[w * 9 + 1])!;
    for (let t = 0; t < 9; t++) {
      assert.equal(a.inputs[w * 9 + t], bytes[start + t]);
      assert.equal(a.targets[w * 9 + t], bytes[start + t + 1]);
    }
  }
  assert.throws(
    () => lmBatch(bytes.subarray(0, 10), new Rng(0), 1, 9),
    (e: unknown) => isMambaError(e, 'EMPTY_INPUT'),
  );
});

test('the learning rate warms up over its share of the time, then decays to 10% at the end', () => {
  const o = { lr: 1e-3, seconds: 100, warmupShare: 0.1 };
  assert.ok(Math.abs(lmLearningRate(5, o) - 0.5e-3) < 1e-9);
  assert.ok(Math.abs(lmLearningRate(10, o) - 1e-3) < 1e-9);
  assert.ok(lmLearningRate(55, o) < 1e-3 && lmLearningRate(55, o) > 0.1e-3);
  assert.ok(Math.abs(lmLearningRate(100, o) - 1e-4) < 1e-9);
  assert.ok(Math.abs(lmLearningRate(150, o) - 1e-4) < 1e-9);
});

test('bits per byte: an untrained model is near 8; training lowers it; the log counts steps and time', async () => {
  const bk = cpu();
  const text = 'the quick brown fox jumps over the lazy dog. '.repeat(40);
  const c = byteCorpus(
    Array.from({ length: 10 }, (_, i) => ({ name: `${i}`, text })),
    5,
    'test',
  );
  const lm = buildTaskModel(
    { ...DEFAULT_TASK_MODEL, mixer: 'mamba', vocabSize: 256, dModel: 16, nLayer: 1, dState: 4, maxLength: 32 },
    bk,
    0,
  );
  const before = await bitsPerByte(lm, c.valid, 32, 2048, 8);
  assert.equal(before.bytes, Math.floor((2048 - 1) / 32) * 32);
  assert.ok(Math.abs(before.bitsPerByte - 8) < 0.1, `${before.bitsPerByte}`);
  const o: LmTrainOptions = { seqLen: 32, batch: 8, lr: 1e-2, seconds: 2, warmupShare: 0.05, clipNorm: 1, seed: 0 };
  const log = newLmLog();
  await trainLmSlice(lm, taskOptimizer(lm, { weightDecay: 0 }), c, o, log, 10, 5);
  assert.ok(log.seconds >= 2 && log.steps > 0, `${log.seconds} s, ${log.steps} steps`);
  assert.ok(log.loss.length > 0 && log.loss.every(([s, l]) => s > 0 && l > 0));
  const after = await bitsPerByte(lm, c.valid, 32, 2048, 8);
  assert.ok(after.bitsPerByte < before.bitsPerByte - 1, `${before.bitsPerByte} -> ${after.bitsPerByte}`);
  // a finished budget trains no more
  const steps = log.steps;
  await trainLmSlice(lm, taskOptimizer(lm, { weightDecay: 0 }), c, o, log, 10);
  assert.equal(log.steps, steps);
});

test('--mixers: names with optional widths; anything else is a clear error', () => {
  assert.deepEqual(parseMixerList('mamba3, mamba:120', 64), [
    { mixer: 'mamba3', dModel: 64 },
    { mixer: 'mamba', dModel: 120 },
  ]);
  for (const bad of ['rnn', 'mamba:0', 'mamba:1.5', 'mamba:3:4', ','])
    assert.throws(
      () => parseMixerList(bad, 64),
      (e: unknown) => isMambaError(e, 'BAD_ARGUMENT'),
      bad,
    );
});

test('tasks lm end to end on the Brown corpus: a table, and a results JSON with every mixer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mamba-lm-'));
  try {
    const out = join(dir, 'lm.json');
    let printed = '';
    await tasksCommand(
      [
        'lm',
        '--mixers',
        'mamba,mamba2:24',
        '--seconds',
        '1',
        '--slice',
        '0.5',
        '--d-model',
        '16',
        '--layers',
        '1',
        '--seq-len',
        '16',
        '--batch',
        '4',
        '--eval-bytes',
        '256',
        '--quiet',
        '--out',
        out,
      ],
      (s) => {
        printed += s;
      },
    );
    assert.match(printed, /\| mamba \| 16 \|/);
    assert.match(printed, /\| mamba2 \| 24 \|/);
    const r = JSON.parse(readFileSync(out, 'utf8')) as LmRunResult;
    assert.equal(r.format, 'mamba-ts-lm-run/1');
    assert.ok(r.corpus.trainBytes > 4e6 && r.corpus.validBytes > 4e5, JSON.stringify(r.corpus));
    assert.deepEqual(
      r.runs.map((x) => [x.mixer, x.model.dModel]),
      [
        ['mamba', 16],
        ['mamba2', 24],
      ],
    );
    for (const x of r.runs) {
      assert.ok(x.trainSeconds >= 1 && x.steps > 0);
      assert.ok(x.curve.length >= 2, 'a point per slice');
      assert.equal(x.validBitsPerByte, x.curve[x.curve.length - 1][2]);
      assert.ok(x.validBitsPerByte < x.initialBitsPerByte);
    }
    await assert.rejects(
      tasksCommand(['lm', '--mixers', 'mamba']),
      (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /--seconds/.test((e as Error).message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
