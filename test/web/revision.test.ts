import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ROOT } from '../helpers/fixtures.js';
import { makeTinyModel } from '../helpers/tiny-model.js';
import { launch } from './chromium.js';
import { serve } from './serve.js';

/**
 * `org/name@revision` in the web app: the model box and the shareable URL take a hub id with a
 * revision; the files come from that revision (<hub>/org/name/resolve/<revision>/, the hub being
 * HF_ENDPOINT of `mamba-ts web`, here a local server with two revisions of a tiny model) and are
 * cached apart from other revisions: loading main after v2 downloads main, loading v2 again
 * downloads nothing.
 */
interface AppState {
  state: string;
  error: string;
  info?: { downloadedBytes: number };
}

async function startWeb(env: Record<string, string>): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [join(ROOT, 'bin/mamba-ts.js'), 'web', '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const url = await new Promise<string>((ok, bad) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d;
      const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) ok(m[1]);
    });
    proc.stderr!.on('data', (d: Buffer) => (out += d));
    proc.on('exit', (c) => bad(new Error(`mamba-ts web exited ${c}: ${out}`)));
  });
  return { proc, url };
}

async function open(page: Page, url: string, model: string): Promise<AppState> {
  await page.goto(`${url}?${new URLSearchParams({ model, backend: 'cpu' })}`);
  await page.waitForFunction(
    () => {
      const a = (globalThis as unknown as { mambaApp: AppState }).mambaApp;
      return a.error !== '' || a.state === 'ready';
    },
    undefined,
    { timeout: 120_000 },
  );
  return page.evaluate(() => (globalThis as unknown as { mambaApp: AppState }).mambaApp);
}

test(
  'web app: org/name@revision loads that revision, cached apart from main, and travels in the link',
  {
    timeout: 300_000,
  },
  async (t) => {
    const main = await makeTinyModel({ seed: 1 });
    const v2 = await makeTinyModel({ seed: 2 });
    const hub = await serve({
      mounts: {
        '/org/tiny/resolve/main/': main,
        '/org/tiny/resolve/v2/': v2,
        '/org/tiny/resolve/refs/pr/1/': v2,
      },
      headers: { 'access-control-allow-origin': '*' },
    });
    const { proc, url } = await startWeb({ HF_ENDPOINT: hub.url });
    const browser = await launch(t);
    if (!browser) {
      proc.kill();
      return void (await hub.close());
    }
    const weights = (rev: string) =>
      hub.log.filter((l) => l.startsWith(`GET /org/tiny/resolve/${rev}/model.safetensors `));
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));

      let a = await open(page, url, 'org/tiny@v2');
      assert.equal(a.error, '', 'no error message');
      assert.equal(weights('v2').length, 1, `v2's weights downloaded: ${hub.log.join(', ')}`);
      assert.equal(weights('main').length, 0, 'nothing from main');
      assert.ok(a.info!.downloadedBytes > 0);
      // the link carries the revision
      await page.click('#share');
      assert.equal(new URL(page.url()).searchParams.get('model'), 'org/tiny@v2');

      a = await open(page, url, 'org/tiny');
      assert.equal(a.error, '');
      assert.equal(weights('main').length, 1, 'main is downloaded: not served from v2 in the cache');
      assert.ok(a.info!.downloadedBytes > 0);

      a = await open(page, url, 'org/tiny@v2');
      assert.equal(a.error, '');
      assert.equal(a.info!.downloadedBytes, 0, 'v2 again: from the browser cache');
      assert.equal(weights('v2').length, 1, 'no second download of v2');

      // a revision with slashes (a pull request's ref) is one encoded path segment
      a = await open(page, url, 'org/tiny@refs/pr/1');
      assert.equal(a.error, '');
      assert.equal(weights('refs/pr/1').length, 1, hub.log.join(', '));

      // a malformed id is not sent to the hub as one
      a = await open(page, url, 'org/tiny@');
      assert.match(a.error, /Could not load the model/);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      proc.kill();
      await hub.close();
    }
  },
);
