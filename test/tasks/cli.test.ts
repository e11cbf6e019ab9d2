import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLengths, tasksCommand } from '../../src/cli/tasks.js';
import { isMambaError } from '../../src/errors.js';
import { TASKS } from '../../src/tasks/generators.js';
import { MIXERS } from '../../src/tasks/models.js';
import { isTaskRunResult, type TaskRunResult } from '../../src/tasks/results.js';

/** `mamba-ts tasks`: help, strict options, a tiny run end to end (results JSON), resuming, and the report. */
async function capture(argv: string[]): Promise<string> {
  let out = '';
  await tasksCommand(argv, (s) => {
    out += s;
  });
  return out;
}

test('tasks --help names every task and mixer', async () => {
  const help = await capture(['--help']);
  for (const t of TASKS) assert.ok(help.includes(t), t);
  for (const m of MIXERS) assert.ok(help.includes(`  ${m} `), m);
  assert.equal(await capture(['run', '--help']), help);
});

test('bad invocations are clear errors', async () => {
  await assert.rejects(
    tasksCommand(['run', 'mqar', '--mixer', 'mamba', '--dmodel', '3']),
    (e: unknown) => isMambaError(e, 'UNKNOWN_OPTION') && /--dmodel/.test((e as Error).message),
  );
  await assert.rejects(
    tasksCommand(['run', 'mqar']),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /--mixer/.test((e as Error).message),
  );
  await assert.rejects(
    tasksCommand(['run', 'copying', '--mixer', 'mamba']),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /selective-copying/.test((e as Error).message),
  );
  await assert.rejects(
    tasksCommand(['run', 'mqar', '--mixer', 'rnn']),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /attention/.test((e as Error).message),
  );
  await assert.rejects(tasksCommand(['run', 'mqar', '--mixer', 'mamba', '--eval-lengths', '64']), (e: unknown) =>
    isMambaError(e, 'BAD_ARGUMENT'),
  );
  await assert.rejects(
    tasksCommand(['run', 'mqar', '--mixer', 'mamba', '--time-limit', '5']),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /--checkpoint/.test((e as Error).message),
  );
  await assert.rejects(tasksCommand(['frobnicate']), (e: unknown) => isMambaError(e, 'BAD_ARGUMENT'));
  assert.deepEqual(parseLengths('2^6..2^9'), [64, 128, 256, 512]);
  assert.deepEqual(parseLengths('16, 2^5,100'), [16, 32, 100]);
  assert.throws(
    () => parseLengths('2^9..2^6'),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT'),
  );
  assert.throws(
    () => parseLengths('abc'),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT'),
  );
});

test('tasks run writes a results JSON (resuming through a checkpoint) and tasks report turns runs into tables and plots', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mamba-ts-tasks-'));
  try {
    const common = [
      '--d-model',
      '8',
      '--layers',
      '1',
      '--d-state',
      '4',
      '--steps',
      '4',
      '--batch',
      '4',
      '--eval-examples',
      '8',
      '--eval-every',
      '2',
      '--quiet',
    ];
    const ih = join(dir, 'runs', 'ih.json'),
      ckpt = join(dir, 'ih.safetensors');
    const ihArgs = [
      'run',
      'induction-heads',
      '--mixer',
      'mamba',
      '--seq-len',
      '8',
      '--eval-lengths',
      '8,2^4',
      '--length-examples',
      '4',
      '--out',
      ih,
      '--checkpoint',
      ckpt,
      ...common,
    ];
    // A time limit of a millisecond stops after the first step and leaves a checkpoint, no results yet.
    assert.equal((await capture([...ihArgs, '--time-limit', '0.001'])).trim(), ckpt);
    assert.ok(existsSync(ckpt) && !existsSync(ih));
    assert.equal((await capture(ihArgs)).trim(), ih);
    const r = JSON.parse(readFileSync(ih, 'utf8')) as TaskRunResult;
    assert.ok(isTaskRunResult(r));
    assert.equal(r.task, 'induction-heads');
    assert.equal(r.log.steps, 4);
    assert.equal(r.log.stoppedBy, 'steps');
    assert.deepEqual(
      r.lengths.map((x) => x.length),
      [8, 16],
    );
    assert.equal(r.lengths[1].method, 'chunked-state');
    assert.ok(
      r.accuracy.token >= 0 && r.accuracy.token <= 1 && r.parameters > 0 && r.command.includes('induction-heads'),
    );
    const runs: [string, string, string[]][] = [
      ['selective-copying', 's4d', ['--seq-len', '12', '--count', '3', '--vocab', '6']],
      ['mqar', 'attention', ['--seq-len', '16', '--count', '2', '--vocab', '16', '--heads', '2']],
      ['mqar', 'attention', ['--seq-len', '16', '--count', '2', '--vocab', '16', '--heads', '2', '--d-model', '12']],
    ];
    for (const [i, [task, mixer, extra]] of runs.entries())
      await capture(['run', task, '--mixer', mixer, '--out', join(dir, 'runs', `${i}.json`), ...common, ...extra]);
    const md = join(dir, 'report', 'tasks.md');
    await capture(['report', '--in', join(dir, 'runs'), '--out', md]);
    const text = readFileSync(md, 'utf8');
    assert.match(text, /### Selective copying, length 12, 3 tokens to memorise, d_model 8/);
    assert.match(text, /\| No gate \| S4 \| `s4d` \|/);
    assert.match(text, /### Induction heads/);
    assert.match(text, /2\^3 \| 2\^4/);
    assert.match(text, /### MQAR, L = 16, 2 key-value pairs/);
    assert.match(text, /d = 8 \| d = 12/);
    for (const svg of ['selective-copying-L12-n3-d8', 'induction-heads', 'mqar-L16-kv2'])
      assert.match(readFileSync(join(dir, 'report', `${svg}.svg`), 'utf8'), /^<svg[\s\S]*<\/svg>\s*$/);
    await assert.rejects(tasksCommand(['report', '--in', join(dir, 'nothing')]), (e: unknown) =>
      isMambaError(e, 'FILE_NOT_FOUND'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
