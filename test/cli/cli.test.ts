import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PARITY, ROOT, readExpected, maxAbsDiff } from '../helpers/fixtures.js';
import { makeTinyModel } from '../helpers/tiny-model.js';

/** The CLI as users run it: a golden run against PyTorch's greedy tokens, JSON outputs, and errors. */
const BIN = join(ROOT, 'bin', 'mamba-ts.js');

function cli(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, HF_HUB_OFFLINE: '1' },
    maxBuffer: 1 << 28,
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test("generate --tokens --greedy --format json reproduces transformers' greedy tokens", async () => {
  const exp = await readExpected('mamba1-tied');
  const prompt = exp.ids[1];
  const n = exp.greedy[1].length - prompt.length;
  const r = cli(
    'generate',
    '--model',
    join(PARITY, 'mamba1-tied'),
    '--tokens',
    prompt.join(','),
    '--greedy',
    '--ignore-eos',
    '--max-new-tokens',
    String(n),
    '--format',
    'json',
  );
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), { tokens: exp.greedy[1] });
});

test('logits prints one row per position, equal to the fixture', async () => {
  const exp = await readExpected('mamba1-tied');
  const r = cli('logits', '--model', join(PARITY, 'mamba1-tied'), '--tokens', exp.ids[0].join(','));
  assert.equal(r.code, 0, r.err);
  const rows = (JSON.parse(r.out) as { logits: number[][] }).logits;
  assert.equal(rows.length, exp.ids[0].length);
  assert.ok(maxAbsDiff(rows.flat(), exp.logits.subarray(0, rows.length * exp.V)) < 1e-4);
});

test('generate from text streams text; a fixed seed repeats; several prompts batch', async () => {
  const dir = await makeTinyModel();
  const a = cli('generate', '--model', dir, '--prompt', 'the cat', '--seed', '42', '-n', '12');
  const b = cli('generate', '--model', dir, '--prompt', 'the cat', '--seed', '42', '-n', '12');
  assert.equal(a.code, 0, a.err);
  assert.ok(a.out.startsWith('the cat'));
  assert.equal(a.out, b.out);
  const batch = cli(
    'generate',
    '--model',
    dir,
    '--prompt',
    'the cat',
    '--prompt',
    'a dog sat',
    '--seed',
    '1',
    '-n',
    '5',
    '--format',
    'json',
  );
  assert.equal(batch.code, 0, batch.err);
  const lines = batch.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { tokens: number[] });
  assert.equal(lines.length, 2);
});

test('info describes the model', async () => {
  const r = cli('info', '--model', join(PARITY, 'mamba1-tied'));
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /architecture\s+mamba/);
  assert.match(r.out, /state per sequence\s+10,560 bytes/); // 3 layers x 80 x (4 + 7) x 4 bytes
  const j = JSON.parse(cli('info', '--model', join(PARITY, 'mamba1-tied'), '--format', 'json').out) as {
    parameters: number;
  };
  assert.ok(j.parameters > 0);
});

test('every command has --help', () => {
  for (const c of ['generate', 'logits', 'info']) {
    const r = cli(c, '--help');
    assert.equal(r.code, 0);
    assert.match(r.out, new RegExp(`mamba-ts ${c}`));
  }
});

test('user errors: message with a code, exit code != 0, no stack trace', async () => {
  const fx = join(PARITY, 'mamba1-tied');
  const cases: [string[], RegExp][] = [
    [
      ['generate', '--model', fx, '--tokens', '1,2', '--bogus'],
      /error\[UNKNOWN_OPTION\]: generate: unknown option --bogus/,
    ],
    [['generate', '--model', fx, '--tokens', '1,2,999'], /error\[TOKEN_OUT_OF_RANGE\]: token id 999/],
    [['generate', '--model', fx, '--tokens', '1,x'], /error\[BAD_ARGUMENT\]: --tokens: "x" is not a token id/],
    [['generate', '--model', fx, '--prompt', ''], /error\[EMPTY_INPUT\]/],
    [['generate', '--model', fx, '--prompt', 'hi'], /has no tokenizer\.json/],
    [
      ['generate', '--model', fx, '--tokens', '1', '--temperature', 'hot'],
      /--temperature must be a number >= 0, got "hot"/,
    ],
    [['generate', '--model', '/no/such/dir', '--tokens', '1'], /error\[FILE_NOT_FOUND\]/],
    [['logits', '--model', fx], /--tokens is required/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ];
  for (const [args, re] of cases) {
    const r = cli(...args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.err, re, args.join(' '));
    assert.doesNotMatch(r.err, /\n\s+at /, `stack trace for ${args.join(' ')}`);
  }
});
