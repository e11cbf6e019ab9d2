#!/usr/bin/env node
// The browser builds, with esbuild (a devDependency; run after tsc by `npm run build`, or alone as
// `npm run build:web`):
//  - dist/browser/mamba-ts.js: `mamba-ts/browser` as one ES module with its dependencies inside, so a
//    plain <script type="module"> imports it with no import map. Beside it, the CPU backend's thread
//    host and pool worker, which the bundle starts by relative URL in cross-origin-isolated pages.
//  - dist/web/: the web app (web/), static files a server can host under any base path (every URL in
//    it is relative), with the shipped default model, the task models of the Selection view and the
//    context-cost measurements inside.
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const THREADS = {
  'thread-host-web': join(ROOT, 'src/backend/cpu/wasm/thread-host-web.ts'),
  'pool-worker-web': join(ROOT, 'src/backend/cpu/wasm/pool-worker-web.ts'),
};
const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  minify: true,
  logLevel: 'warning',
  // default-thread-host.ts picks its host with a computed import: resolved at run time, beside the bundle
  logOverride: { 'unsupported-dynamic-import': 'silent' },
};

async function main() {
  const lib = join(ROOT, 'dist/browser');
  rmSync(lib, { recursive: true, force: true });
  await build({ ...common, entryPoints: { 'mamba-ts': join(ROOT, 'src/browser.ts'), ...THREADS }, outdir: lib });

  if (!existsSync(join(ROOT, 'web/index.html'))) return;
  const app = join(ROOT, 'dist/web');
  rmSync(app, { recursive: true, force: true });
  await build({
    ...common,
    entryPoints: { main: join(ROOT, 'web/main.ts'), worker: join(ROOT, 'web/worker.ts'), ...THREADS },
    outdir: app,
    loader: { '.css': 'css' },
  });
  for (const f of ['index.html', 'style.css']) cpSync(join(ROOT, 'web', f), join(app, f));
  cpSync(join(ROOT, 'node_modules/uplot/dist/uPlot.min.css'), join(app, 'uPlot.min.css'));
  mkdirSync(join(app, 'models'), { recursive: true });
  cpSync(join(ROOT, 'models/default'), join(app, 'models/default'), {
    recursive: true,
    filter: (f) => !/\.(svg|md)$/.test(f),
  });
  // the Selection view's task models (models/tasks/: S6 and S4D trained on selective copying)
  mkdirSync(join(app, 'models/tasks'), { recursive: true });
  for (const f of ['s6.safetensors', 's4d.safetensors'])
    if (existsSync(join(ROOT, 'models/tasks', f))) cpSync(join(ROOT, 'models/tasks', f), join(app, 'models/tasks', f));
  cpSync(join(ROOT, 'bench/results/context-cost.json'), join(app, 'context-cost.json'));
  // the page's settings; `mamba-ts web --model` serves its own in place of this one
  writeFileSync(join(app, 'app-config.json'), '{}\n');
}

main().catch((e) => {
  process.stderr.write(`build-web: ${e?.stack ?? e}\n`);
  process.exit(1);
});
