import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT } from '../helpers/fixture-model.js';

/**
 * The browser path must import nothing from Node: walk the static imports of the modules a page
 * uses (the WebGPU backend, the model, generation) through dist/ and refuse any `node:` module or
 * bare package name (a page has no node_modules resolution). And the generated WGSL module must be
 * what scripts/gen-wgsl.js makes from the .wgsl files.
 */
const ENTRIES = [
  'src/backend/webgpu/create.js',
  'src/models/build-mamba.js',
  'src/models/config.js',
  'src/generate/device-loop.js',
  'test/webgpu/browser-page.js',
];
const STATIC = /(?:^|[;\n])\s*(?:import|export)\s+(?:[^'";]*?\sfrom\s*)?['"]([^'"]+)['"]/g;

function walk(file: string, seen: Map<string, string>, from: string, allowed: readonly string[] = []): void {
  if (seen.has(file)) return;
  seen.set(file, from);
  const code = readFileSync(file, 'utf8');
  for (const m of code.matchAll(STATIC)) {
    const spec = m[1];
    if (allowed.includes(spec)) continue;
    if (!spec.startsWith('.') && !spec.startsWith('/')) {
      assert.fail(
        `${file.slice(ROOT.length)} imports "${spec}" (reached from ${from.slice(ROOT.length)}): the browser build may import only relative modules`,
      );
    }
    const target = resolve(dirname(file), spec);
    assert.ok(existsSync(target), `${file}: import ${spec} does not exist`);
    walk(target, seen, file, allowed);
  }
}

test('browser build: the modules a page loads import nothing from Node (no node: modules, no bare packages)', () => {
  const seen = new Map<string, string>();
  for (const e of ENTRIES) walk(join(ROOT, 'dist', e), seen, 'entry');
  assert.ok(seen.size > 20, `walked ${seen.size} modules`);
  assert.ok(
    !seen.has(join(ROOT, 'dist/src/backend/webgpu/node.js')),
    'the Node adapter is reachable from the browser entries',
  );
});

test('browser entry (mamba-ts/browser): no node: modules; the only packages it imports are the tokenizer and chat template libraries and the linear-time regex engine', () => {
  const seen = new Map<string, string>();
  // All pure JavaScript, made for browsers: tokenizer.json, chat templates (Jinja), RE2 for tokenizer patterns.
  walk(join(ROOT, 'dist/src/browser.js'), seen, 'entry', ['@huggingface/tokenizers', '@huggingface/jinja', 're2js']);
  assert.ok(seen.has(join(ROOT, 'dist/src/backend/webgpu/create.js')));
  assert.ok(
    !seen.has(join(ROOT, 'dist/src/backend/webgpu/node.js')),
    'the Node adapter is reachable from the browser entry',
  );
});

test('the generated WGSL module is up to date with kernels/*.wgsl', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/gen-wgsl.js'), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});
