import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { acquireFileLock } from '../../src/io/file-lock.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mamba-ts-lock-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Whether `p` settles within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  const t = sleep(ms).then(() => false);
  return Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    t,
  ]);
}

test('a held lock makes the next taker wait until it is released', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'sub', 'x.lock');
    const a = await acquireFileLock(path);
    let holder = '';
    const b = acquireFileLock(path, { pollMs: 10, onWait: (h) => (holder = h) });
    assert.equal(await settlesWithin(b, 150), false);
    assert.equal(holder, `process ${process.pid} on ${hostname()}`);
    assert.equal(await a.isHeld(), true);
    await a.release();
    const lockB = await b;
    assert.equal(await lockB.isHeld(), true);
    assert.equal(await a.isHeld(), false);
    await lockB.release();
    await assert.rejects(stat(path), { code: 'ENOENT' });
  });
});

test('a lock left by a dead process on this host is taken over at once', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'x.lock');
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    await writeFile(path, JSON.stringify({ pid: dead, host: hostname(), token: 'old' }));
    const lock = await acquireFileLock(path, { pollMs: 10 });
    assert.ok(!(await readFile(path, 'utf8')).includes('"old"'));
    await lock.release();
  });
});

test('a lock whose heartbeat stopped (another host) is stale after staleMs; a fresh one is not', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'x.lock');
    await writeFile(path, JSON.stringify({ pid: 1, host: 'elsewhere', token: 'theirs' }));
    const stop = new AbortController();
    const waiting = acquireFileLock(path, { pollMs: 10, staleMs: 60_000, signal: stop.signal });
    assert.equal(await settlesWithin(waiting, 100), false, 'fresh lock of another host is respected');
    stop.abort();
    await assert.rejects(waiting);

    const old = new Date(Date.now() - 120_000);
    await utimes(path, old, old);
    const lock = await acquireFileLock(path, { pollMs: 10, staleMs: 60_000 });
    assert.equal(await lock.isHeld(), true);
    await lock.release();
  });
});

test('the holder keeps its lock fresh with a heartbeat', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'x.lock');
    const a = await acquireFileLock(path, { staleMs: 90 });
    const stop = new AbortController();
    const b = acquireFileLock(path, { staleMs: 90, pollMs: 10, signal: stop.signal });
    assert.equal(await settlesWithin(b, 300), false, 'not taken over while the holder lives');
    stop.abort();
    await assert.rejects(b);
    assert.equal(await a.isHeld(), true);
    await a.release();
    await a.release(); // twice is harmless
  });
});
