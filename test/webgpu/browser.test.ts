import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { assertClose } from '../helpers/compare.js';
import { fixtureExpected, ROOT } from '../helpers/fixture-model.js';
import type { PageResult } from './browser-page.js';

/**
 * The library's browser build (the ES modules in dist/, loaded as they are: no bundler, no import
 * map) running on a page's WebGPU in headless Chromium (Debian's chromium, SwiftShader adapter),
 * driven by playwright-core: the fixture model's logits and a greedy generation on the GPU must
 * match PyTorch's.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FLAGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-angle=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--disable-gpu-sandbox',
];
const TYPES: Record<string, string> = {
  '.js': 'text/javascript',
  '.json': 'application/json',
  '.html': 'text/html',
  '.safetensors': 'application/octet-stream',
  '.map': 'application/json',
};

/** Serves the repository read-only on a loopback port. */
async function serve(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(
      /^(\.\.[/\\])+/,
      '',
    );
    const file = join(ROOT, path);
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>mamba-ts</title><link rel="icon" href="data:,">');
      return;
    }
    if (!file.startsWith(ROOT) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return { server, url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}` };
}

test(
  "browser build: the fixture model on a page's WebGPU (headless Chromium) matches PyTorch",
  { timeout: 600_000 },
  async (t) => {
    if (!existsSync(CHROMIUM)) {
      if (process.env.CI === 'true') assert.fail(`CI=true but ${CHROMIUM} is missing (apt-get install chromium)`);
      t.skip(`no ${CHROMIUM}`);
      return;
    }
    const { chromium } = await import('playwright-core');
    const exp = await fixtureExpected('mamba1-tied');
    const { server, url } = await serve();
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      await page.goto(`${url}/`);
      const hasGpu = await page.evaluate(() => !!(navigator as unknown as { gpu?: unknown }).gpu);
      if (!hasGpu) {
        if (process.env.CI === 'true') assert.fail('CI=true but the page has no navigator.gpu');
        t.skip('Chromium exposes no WebGPU here');
        return;
      }
      const n = exp.total - exp.l;
      const r = await page.evaluate(
        async ([mod, dir, ids, b, l, n]) => {
          const m = (await import(mod)) as {
            runFixture: (dir: string, ids: number[], b: number, l: number, n: number) => Promise<PageResult>;
          };
          return m.runFixture(dir, ids, b, l, n);
        },
        [
          `${url}/dist/test/webgpu/browser-page.js`,
          `${url}/fixtures/parity/mamba1-tied`,
          Array.from(exp.ids),
          exp.b,
          exp.l,
          n,
        ] as const,
      );
      assert.deepEqual(errors, [], 'page errors');
      t.diagnostic(`adapter in the page: ${r.adapter}`);
      assertClose(r.logits, exp.logits, 'logits in the browser vs PyTorch', 0, 1e-4);
      const want = Array.from({ length: exp.b }, (_, i) =>
        Array.from(exp.greedy.subarray(i * exp.total + exp.l, (i + 1) * exp.total)),
      );
      assert.deepEqual(r.generated, want, 'greedy generation in the browser');
    } finally {
      await browser.close();
      server.close();
    }
  },
);
