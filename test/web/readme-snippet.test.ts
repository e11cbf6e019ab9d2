import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/fixtures.js';
import { launch } from './chromium.js';
import { serve } from './serve.js';

/**
 * The README's browser snippet, run as written in headless Chromium: the page is the README's
 * <script type="module"> block, the package is served where an install puts it
 * (./node_modules/mamba-ts/), there is no import map, and the model comes from a server that ignores
 * Range as `python3 -m http.server` does. Only the model URL changes: to the shipped model, served
 * locally (the test machine reaches no hub).
 */
const OPTIONAL =
  /((model\.safetensors\.index|special_tokens_map|tokenizer_config|generation_config)\.json|chat_template\.jinja)$/;
const BUNDLE = './node_modules/mamba-ts/dist/browser/mamba-ts.js';

function readmeSnippet(t: { diagnostic(m: string): void }): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /```html\n(<script type="module">[\s\S]*?loadModelFromUrl[\s\S]*?<\/script>)\n```/.exec(readme);
  assert.ok(block, 'README.md has an ```html block with the <script type="module"> snippet');
  let html = block[1];
  const from = /from '([^']+)'/.exec(html)?.[1];
  if (from !== BUNDLE) {
    // The README still names the unbundled ES modules, which need an import map for the tokenizer.
    t.diagnostic(`README imports ${from}; the bundled entry is ${BUNDLE} (update the README)`);
    html = html.replace(`'${from}'`, `'${BUNDLE}'`);
  }
  return html.replace(/loadModelFromUrl\('[^']+'/, "loadModelFromUrl('./models/default/'");
}

test(
  "the README's <script type=module> snippet generates in Chromium (no import map, server ignores Range)",
  {
    timeout: 300_000,
  },
  async (t) => {
    const html = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><body>${readmeSnippet(t)}</body>`;
    const served = await serve({
      mounts: { '/node_modules/mamba-ts/': ROOT, '/models/default/': join(ROOT, 'models/default') },
      pages: { '/': html },
      ignoreRange: true,
    });
    const browser = await launch(t);
    if (!browser) return void (await served.close());
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        // the loader asks for optional files (a shard index, tokenizer companions); their 404s are expected
        if (m.type() === 'error' && !(m.text().includes('404') && OPTIONAL.test(m.location().url)))
          errors.push(`${m.text()} ${m.location().url}`);
      });
      await page.goto(`${served.url}/`);
      if (!(await page.evaluate(() => 'gpu' in navigator))) {
        if (process.env.CI === 'true') assert.fail('CI=true but the page has no navigator.gpu');
        return t.skip('Chromium exposes no WebGPU here');
      }
      const started = Date.now();
      // 40 new tokens of the shipped model: some text after the body's start
      const appended = () =>
        [...document.body.childNodes]
          .filter((n) => n.nodeType === Node.TEXT_NODE)
          .map((n) => n.textContent)
          .join('');
      await page.waitForFunction(`(${appended})().trim().length >= 40`, undefined, { timeout: 240_000 });
      t.diagnostic(`generated in ${Date.now() - started} ms: ${JSON.stringify(await page.evaluate(appended))}`);
      assert.deepEqual(errors, [], 'page errors');
      const weights = served.log.filter((l) => /model\.safetensors /.test(l) && !l.startsWith('HEAD'));
      assert.equal(weights.length, 1, `one whole download of the weights: ${weights.join('; ')}`);
      assert.ok(!served.log.some((l) => l.endsWith(' 206')), 'no partial answers (the server ignores Range)');
    } finally {
      await browser.close();
      await served.close();
    }
  },
);
