import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMambaError } from '../../src/errors.js';
import {
  checkCheckpointDirWritable,
  checkTrainerState,
  removeStaleTempDirs,
  TRAINER_STATE,
  writeCheckpointDir,
  type CheckpointFiles,
} from '../../src/train/checkpoint.js';
import { ROOT } from '../helpers/fixtures.js';
import { smallText, tempDir, TINY_CONFIG } from './helpers.js';

/**
 * File-system failures a user can cause are IO errors naming the path and what was being done, found
 * before training starts where possible; a failed save leaves the previous checkpoint as it was; a
 * damaged trainer_state.json is CORRUPT_FILE naming the file.
 */
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const cli = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 120_000 });
const noStack = (s: string): void => assert.doesNotMatch(s, /\n\s+at |internal error/);

const files = (tag: string, bytes = 16): CheckpointFiles => ({
  model: [{ name: 'w', dtype: 'F32', shape: [bytes / 4], data: new Float32Array(bytes / 4).fill(1) }],
  files: { 'tag.txt': tag },
});

/** A tmpfs mounted for the test (root only; undefined elsewhere, and the test is skipped). */
function mountTmpfs(dir: string, options: string): (() => void) | undefined {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  if (r.status !== 0) return undefined;
  return () => {
    spawnSync('umount', [dir]);
  };
}

/** A pid that no process has any more. */
async function deadPid(): Promise<number> {
  const p = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => p.on('exit', r));
  return p.pid!;
}

test('a save removes temporary directories of dead processes, not of live ones', async () => {
  const root = tempDir();
  const dir = join(root, 'run');
  const dead = await deadPid();
  const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)']);
  try {
    mkdirSync(join(root, `run.tmp-${dead}`));
    writeFileSync(join(root, `run.tmp-${dead}`, 'model.safetensors'), 'half written');
    mkdirSync(join(root, `run.tmp-${live.pid}`));
    mkdirSync(join(root, 'other.tmp-1'));
    await writeCheckpointDir(dir, files('a'));
    const left = readdirSync(root).sort();
    assert.deepEqual(left, ['other.tmp-1', 'run', `run.tmp-${live.pid}`]);
    assert.deepEqual(await removeStaleTempDirs(dir), []);
  } finally {
    live.kill();
  }
});

test('a failed save leaves the previous checkpoint and no temporary directory', async () => {
  const root = tempDir();
  const dir = join(root, 'run');
  await writeCheckpointDir(dir, files('first'));
  // A file name the file system refuses (a missing sub-directory): the save fails mid-way.
  await assert.rejects(
    writeCheckpointDir(dir, { ...files('second'), files: { 'tag.txt': 'second', 'no/such.json': {} } }),
    (e: unknown) =>
      isMambaError(e) &&
      /cannot save the checkpoint .*run: .*; the checkpoint there before this save is unchanged/.test(
        (e as Error).message,
      ),
  );
  assert.equal(readFileSync(join(dir, 'tag.txt'), 'utf8'), 'first');
  assert.deepEqual(readdirSync(root), ['run']);
});

test('checkpoint directories on a full or read-only file system, or a mount point: clear IO errors', async (t) => {
  const root = tempDir();
  const full = join(root, 'full');
  const unmount = mountTmpfs(full, 'size=64k');
  if (!unmount) {
    t.skip('mounting a tmpfs needs root');
    return;
  }
  try {
    const dir = join(full, 'run');
    await writeCheckpointDir(dir, files('small'));
    await assert.rejects(
      writeCheckpointDir(dir, files('big', 256 * 1024)),
      (e: unknown) =>
        isMambaError(e, 'IO') &&
        /no space left on the device \(ENOSPC/.test((e as Error).message) &&
        /unchanged/.test((e as Error).message),
    );
    assert.equal(readFileSync(join(dir, 'tag.txt'), 'utf8'), 'small');
    assert.deepEqual(readdirSync(full), ['run']);
    await assert.rejects(
      checkCheckpointDirWritable(full),
      (e: unknown) =>
        isMambaError(e, 'IO') && /is a mount point: .* e\.g\. --out .*full\/run/.test((e as Error).message),
    );
    await checkCheckpointDirWritable(join(full, 'run2'));
  } finally {
    unmount();
  }
  const ro = join(root, 'ro');
  const unmountRo = mountTmpfs(ro, 'ro');
  assert.ok(unmountRo);
  try {
    await assert.rejects(
      checkCheckpointDirWritable(join(ro, 'a', 'run')),
      (e: unknown) =>
        isMambaError(e, 'IO') &&
        /--out .*run cannot hold checkpoints: the file system is read-only \(EROFS in mkdir/.test((e as Error).message),
    );
  } finally {
    unmountRo();
  }
});

test('train --out checks: a file in the path, a too-long name, a file as --out, a directory as --config; before any training', () => {
  const root = tempDir();
  const data = smallText(root, 1);
  const config = join(root, 'tiny.json');
  writeFileSync(config, JSON.stringify(TINY_CONFIG));
  writeFileSync(join(root, 'afile'), 'x');
  const cases: [string, RegExp][] = [
    [
      join(root, 'afile', 'sub'),
      /error\[IO\]: --out .*afile\/sub cannot hold checkpoints: a part of the path is a file, not a directory \(ENOTDIR/,
    ],
    [
      join(root, 'x'.repeat(300)),
      /error\[IO\]: --out .* cannot hold checkpoints: the path or one of its names is too long \(ENAMETOOLONG/,
    ],
    [join(root, 'afile'), /error\[BAD_ARGUMENT\]: --out .*afile exists and is not a directory/],
  ];
  for (const [out, re] of cases) {
    const r = cli(['train', '--data', data, '--config', config, '--steps', '2', '--out', out]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /tokenizer:|step \d/, 'training started before the check');
    noStack(r.stderr);
  }
  const dirConfig = cli(['train', '--data', data, '--config', root, '--steps', '2', '--out', join(root, 'o')]);
  assert.match(dirConfig.stderr, /error\[IO\]: --config: cannot read .*: it is a directory, expected a file \(EISDIR/);
});

test('resume with a damaged trainer_state.json: CORRUPT_FILE naming the file', () => {
  const root = tempDir();
  const data = smallText(root, 1);
  const config = join(root, 'tiny.json');
  writeFileSync(config, JSON.stringify(TINY_CONFIG));
  const run = join(root, 'run');
  const r = cli(['train', '--data', data, '--config', config, '--steps', '2', '--out', run, '--quiet']);
  assert.equal(r.status, 0, r.stderr);
  const good = readFileSync(join(run, TRAINER_STATE), 'utf8');
  const state = JSON.parse(good) as Record<string, unknown>;
  const damaged: [string, string, RegExp][] = [
    ['truncated', good.slice(0, good.length / 2), /is not valid JSON/],
    ['not JSON', 'hello', /is not valid JSON/],
    ['empty', '', /is not valid JSON/],
    ['an array', '[]', /must hold a JSON object/],
    ['step a string', JSON.stringify({ ...state, step: '2' }), /the state\.step is wrong: string "2"/],
    ['no sampler', JSON.stringify({ ...state, sampler: undefined }), /the state\.sampler is missing/],
    ['settings null', JSON.stringify({ ...state, settings: null }), /the state\.settings is wrong: null/],
    ['history item', JSON.stringify({ ...state, history: [{ step: 1 }] }), /history\[0\]\.loss is missing/],
    ['data fields', JSON.stringify({ ...state, data: { source: 5 } }), /data\.source is wrong: number 5/],
    ['format', JSON.stringify({ ...state, format: 'x' }), /unknown format string "x"/],
    [
      'nested 10000 deep',
      `{"format": "mamba-ts-train/1", "x": ${'['.repeat(10000)}${']'.repeat(10000)}}`,
      /nests 10001 levels deep/,
    ],
  ];
  for (const [what, text, re] of damaged) {
    const copy = join(root, `copy-${what.replace(/\W/g, '-')}`);
    cpSync(run, copy, { recursive: true });
    writeFileSync(join(copy, TRAINER_STATE), text);
    const res = cli(['train', '--resume', '--out', copy, '--steps', '3']);
    assert.equal(res.status, 1, `${what}: ${res.stderr}`);
    assert.match(
      res.stderr,
      new RegExp(`error\\[CORRUPT_FILE\\]: ${join(copy, TRAINER_STATE).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
      what,
    );
    assert.match(res.stderr, re, what);
    noStack(res.stderr);
  }
  // The checker alone: the good state passes.
  checkTrainerState(state, 'x');
  assert.ok(existsSync(join(run, 'model.safetensors')));
});
