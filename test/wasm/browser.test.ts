import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { ROOT } from '../helpers/fixtures.js';

/**
 * The CPU backend in a browser (Chromium through playwright-core, both present on the dev machine;
 * skipped where no Chromium is found): the compiled modules load with no Node built-in, the
 * WebAssembly kernels run, and in a cross-origin-isolated page `useThreads(2)` starts Web Workers
 * whose results equal one thread's; without isolation the memories are plain and threads are
 * refused with UNSUPPORTED. Set CHROMIUM to the browser's path to run it elsewhere.
 */
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

function serve(): Promise<Server> {
  const srv = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const iso = url.searchParams.has('iso') || (req.headers.referer ?? '').includes('iso');
    if (url.pathname === '/page.html') {
      res.writeHead(200, { 'content-type': 'text/html', ...(iso ? ISOLATION : {}) });
      res.end('<!doctype html><title>mamba-ts cpu</title>');
      return;
    }
    const path = normalize(join(ROOT, url.pathname));
    if (!path.startsWith(join(ROOT, 'dist'))) {
      res.writeHead(404);
      res.end();
      return;
    }
    readFile(path).then(
      (body) => {
        res.writeHead(200, {
          'content-type': extname(path) === '.js' ? 'text/javascript' : 'application/octet-stream',
          'cross-origin-resource-policy': 'same-origin',
          ...(iso ? ISOLATION : {}),
        });
        res.end(body);
      },
      () => {
        res.writeHead(404);
        res.end();
      },
    );
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

interface PageResult {
  isolated: boolean;
  kernels: string;
  shared: boolean;
  threads?: number;
  same?: boolean;
  error?: string;
}

test(
  'browser: wasm kernels, Web Workers with shared memory when isolated, one thread otherwise',
  { skip: !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM}` },
  async () => {
    const { chromium } = await import('playwright-core');
    const srv = await serve();
    const port = (srv.address() as AddressInfo).port;
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      for (const iso of [true, false]) {
        const page = await browser.newPage();
        const errors: string[] = [];
        page.on('pageerror', (e) => errors.push(e.message));
        await page.goto(`http://127.0.0.1:${port}/page.html${iso ? '?iso' : ''}`);
        const r = await page.evaluate(async (): Promise<PageResult> => {
          const mod = '/dist/src/backend/cpu/cpu-backend.js';
          const { CpuBackend } = (await import(mod)) as typeof import('../../src/backend/cpu/cpu-backend.js');
          const bk = new CpuBackend();
          const out: PageResult = {
            isolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
            kernels: bk.kernels,
            shared: bk.arenas!.shared,
          };
          const q = 300,
            p = 257;
          const X = Float32Array.from({ length: 2 * q }, (_, i) => Math.sin(i)),
            W = Float32Array.from({ length: p * q }, (_, i) => Math.cos(i));
          const run = (): number[] => {
            const o = bk.alloc([2, p]);
            bk.matmul(o, bk.upload(X, [2, q]), bk.upload(W, [p, q]), { transB: true });
            return Array.from(bk.readSync(o));
          };
          const one = run();
          try {
            await bk.useThreads(2);
            out.threads = bk.threads;
            out.same = JSON.stringify(run()) === JSON.stringify(one);
          } catch (e) {
            out.error = `${(e as { code?: string }).code}: ${(e as Error).message}`;
          }
          bk.dispose();
          return out;
        });
        await page.close();
        assert.deepEqual(errors, []);
        assert.equal(r.kernels, 'wasm');
        if (iso) {
          assert.ok(r.isolated && r.shared, JSON.stringify(r));
          assert.equal(r.threads, 2, JSON.stringify(r));
          assert.equal(r.same, true, '2 threads equal 1 thread');
        } else {
          assert.ok(!r.isolated && !r.shared, JSON.stringify(r));
          assert.match(r.error ?? '', /^UNSUPPORTED: threads need shared memory/);
        }
      }
    } finally {
      await browser.close();
      srv.close();
    }
  },
);
