import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { PARITY } from '../helpers/fixture-model.js';
import { ROOT } from '../helpers/fixtures.js';
import { launch } from './chromium.js';

/**
 * The web app's "Selection, demonstrated" view in headless Chromium: the two shipped task models
 * (S6 and S4D, models/tasks/) run on a seeded selective-copying example in the worker; the page shows
 * both answers (right or wrong per token) and each model's Δ. Measured from the traces the page drew:
 * the S6 model's Δ is higher on the data tokens than on the noise, the S4D model's Δ is one constant
 * per channel. And the Δ / memory views on a Mamba-2 checkpoint (one Δ per head).
 * A screenshot goes to docs/web/selection.png with UPDATE_SCREENSHOTS=1.
 */
const SHOTS =
  process.env.UPDATE_SCREENSHOTS === '1' ? join(ROOT, 'docs/web') : mkdtempSync(join(tmpdir(), 'web-shots-'));

async function startWeb(args: string[] = []): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [join(ROOT, 'bin/mamba-ts.js'), 'web', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
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

interface Stats {
  key: string;
  correct: number;
  total: number;
  deltaData: number;
  deltaNoise: number;
  channelsOpening: number;
  channelsClosing: number;
  channels: number;
  maxChannelSpread: number;
}
interface AppState {
  state: string;
  error: string;
  traces: number;
  heatmap?: { min: number; max: number; colours: number };
  selection?: { seed: number; layer: number; models: Stats[]; ms: number };
}
const appState = (page: Page): Promise<AppState> =>
  page.evaluate(() => (globalThis as unknown as { mambaApp: AppState }).mambaApp);

async function waitSelection(page: Page, seed: number): Promise<AppState> {
  await page.waitForFunction(
    (s) => {
      const a = (globalThis as unknown as { mambaApp?: AppState }).mambaApp;
      return a !== undefined && (a.error !== '' || a.selection?.seed === s);
    },
    seed,
    { timeout: 180_000, polling: 200 },
  );
  return appState(page);
}

test(
  'web app, Selection view: both task models answer; S6 Δ spikes on data tokens, S4D Δ is constant',
  {
    timeout: 600_000,
  },
  async (t) => {
    const { proc, url } = await startWeb();
    const browser = await launch(t);
    if (!browser) return void proc.kill();
    try {
      const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error' && !/404/.test(m.text())) errors.push(`${m.text()} (${m.location().url})`);
      });
      // a shareable link opens the view on its example (the playground's model on the CPU: not needed here)
      await page.goto(`${url}?${new URLSearchParams({ view: 'selection', example: '3', backend: 'cpu' })}`);
      let a = await waitSelection(page, 3);
      assert.equal(a.error, '', 'no error message on the page');
      const sel = a.selection!;
      assert.deepEqual(
        sel.models.map((m) => m.key),
        ['s6', 's4d'],
      );
      for (const m of sel.models) assert.equal(m.total, 4, `${m.key} answers the 4 markers`);
      // both answers on the page, one cell per marker marked right or wrong
      for (const key of ['s6', 's4d']) {
        const cells = page.locator(
          `#selection-answers tr[data-model="${key}"] td.right, #selection-answers tr[data-model="${key}"] td.wrong`,
        );
        assert.equal(await cells.count(), 4, `${key}: 4 answers shown`);
      }
      const [s6, s4d] = sel.models;
      assert.equal(
        await page.locator('#selection-answers tr[data-model="s6"] td.right').count(),
        s6.correct,
        'the right/wrong marks agree with the count',
      );
      assert.ok(
        s6.deltaData > s6.deltaNoise,
        `S6: mean Δ on data tokens ${s6.deltaData} > on noise ${s6.deltaNoise} (layer ${sel.layer})`,
      );
      assert.ok(s6.channelsOpening > 0, `S6: ${s6.channelsOpening} channels open wider on data tokens`);
      assert.equal(s4d.channelsOpening + s4d.channelsClosing, 0, 'S4D: no channel treats data and noise apart');
      assert.ok(s4d.maxChannelSpread < 1e-6, `S4D: Δ constant per channel (spread ${s4d.maxChannelSpread})`);
      assert.ok(s6.maxChannelSpread > 0.1, `S6: Δ varies along the sequence (spread ${s6.maxChannelSpread})`);
      assert.equal(await page.locator('#selection-tokens .tok').count(), 128, 'the example is shown token by token');
      assert.equal(await page.locator('#selection-tokens .tok.data').count(), 4);
      assert.equal(await page.locator('#selection-chart .u-over').count(), 1, 'the Δ chart is drawn');
      const heat = await page.evaluate(() => {
        const c = document.getElementById('selection-s6') as HTMLCanvasElement;
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        const seen = new Set<number>();
        for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        return { w: c.width, distinct: seen.size };
      });
      assert.ok(heat.w === 128 && heat.distinct > 8, `S6 heatmap: ${JSON.stringify(heat)}`);
      t.diagnostic(
        `seed 3, layer ${sel.layer}: S6 ${s6.correct}/4 right, Δ data/noise ${(s6.deltaData / s6.deltaNoise).toFixed(2)}, ` +
          `${s6.channelsOpening}/${s6.channels} channels opening; ` +
          `S4D ${s4d.correct}/4 right, Δ data/noise ${(s4d.deltaData / s4d.deltaNoise).toFixed(2)}; ${sel.ms.toFixed(0)} ms`,
      );
      mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: join(SHOTS, 'selection.png'), fullPage: true });

      // "New example": the next seed, through the keyboard
      await page.focus('#selection-new');
      await page.keyboard.press('Enter');
      a = await waitSelection(page, 4);
      assert.equal(a.error, '');
      assert.ok(a.selection!.models[0].deltaData > a.selection!.models[0].deltaNoise, 'seed 4: S6 Δ data > noise');
      assert.match(page.url(), /example=4/, 'the URL carries the example');
      assert.deepEqual(errors, [], 'console errors');
    } finally {
      await browser.close();
      proc.kill();
    }
  },
);

test(
  'web app on a Mamba-2 checkpoint: the Δ heatmap has one row per head, the memory views draw',
  {
    timeout: 300_000,
  },
  async (t) => {
    // the Mamba-2 fixture (67 tokens) with the tiny byte-level tokenizer: digits and punctuation are ids 34..65
    const model = mkdtempSync(join(tmpdir(), 'web-m2-'));
    for (const f of ['config.json', 'model.safetensors'])
      copyFileSync(join(PARITY, 'mamba2-g1-tied', f), join(model, f));
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      copyFileSync(join(ROOT, 'fixtures/tokenizer/tiny-bpe', f), join(model, f));
    const { proc, url } = await startWeb(['--model', model]);
    const browser = await launch(t);
    if (!browser) return void proc.kill();
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      // a link that generates 3 tokens; the views trace the tokens read and written
      const q = { view: 'delta', backend: 'cpu', prompt: '1,2;3:4=5?', max_new_tokens: '3', greedy: '1' };
      await page.goto(`${url}?${new URLSearchParams(q)}`);
      await page.waitForFunction(
        () => {
          const a = (globalThis as unknown as { mambaApp: AppState & { lastRun?: unknown } }).mambaApp;
          return a.error !== '' || (a.lastRun !== undefined && a.traces >= 1);
        },
        undefined,
        { timeout: 120_000 },
      );
      const a = await appState(page);
      assert.equal(a.error, '');
      await page.click('#tab-memory');
      await page.click('#tab-delta');
      const h = (await appState(page)).heatmap!;
      assert.ok(h && h.min > 0 && h.max > h.min && h.colours > 4, `Δ values ${JSON.stringify(h)}`);
      const rows = await page.evaluate(() => (document.getElementById('delta-canvas') as HTMLCanvasElement).height);
      assert.equal(rows, 6, 'one row per head (6 heads)');
      assert.match((await page.textContent('#delta-scale')) ?? '', /6 heads \(Mamba-2: one Δ per head\)/);
      await page.click('#tab-memory');
      assert.equal(await page.locator('#memory-chart .u-over').count(), 1);
      assert.equal(await page.locator('#state-chart .u-over').count(), 1);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      proc.kill();
    }
  },
);
