import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// `mamba-ts serve` as users start it: it listens on loopback, answers, and stops cleanly on SIGTERM
// while a request is running (the request finishes first).

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('mamba-ts serve: listens on 127.0.0.1, finishes a running request on SIGTERM, exits 0', async () => {
  const args = [CLI, 'serve', '--port', '0', '--threads', '1'];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(err);
      if (m) resolve(m[1]);
    });
    proc.on('exit', (c) => reject(new Error(`serve exited (${c}): ${err}`)));
  });
  const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
  assert.deepEqual(
    models.data.map((m) => m.id),
    ['mamba-ts-default'],
  );
  const body = { model: 'mamba-ts-default', prompt: 'Once upon', max_tokens: 200, temperature: 0, ignore_eos: true };
  const headers = { 'content-type': 'application/json' };
  const running = fetch(`${url}/v1/completions`, { method: 'POST', headers, body: JSON.stringify(body) });
  await new Promise((r) => setTimeout(r, 50));
  const exited = new Promise<number | null>((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const r = await running;
  assert.equal(r.status, 200);
  const json = (await r.json()) as { usage: { completion_tokens: number } };
  assert.equal(json.usage.completion_tokens, 200);
  assert.equal(await exited, 0, err);
  assert.match(err, /SIGTERM: finishing running requests/);
});

test('mamba-ts serve --help lists the options; a bad --cache URL is a usage error', async () => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
      });
      p.stderr!.on('data', (d: Buffer) => {
        out += d.toString();
      });
      p.on('exit', (code) => resolve({ code, out }));
    });
  const help = await run(['--help']);
  assert.equal(help.code, 0);
  for (const o of ['--host', '--port', '--api-key', '--cache', '--max-queued', '--prefill-chunk']) {
    assert.ok(help.out.includes(o), o);
  }
  const bad = await run(['--cache', 'memcached://x']);
  assert.equal(bad.code, 2);
  assert.match(bad.out, /--cache must be a redis:\/\//);
});
