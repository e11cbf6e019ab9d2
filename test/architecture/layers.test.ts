import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from '../helpers/fixtures.js';

/** src/ imports only downward, with no cycle: the layer order is written once, in scripts/check-layers.js. */
const SCRIPT = join(ROOT, 'scripts', 'check-layers.js');

function check(dir?: string): { code: number; out: string } {
  const r = spawnSync(process.execPath, [SCRIPT, ...(dir ? [dir] : [])], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout + r.stderr };
}

test('src/ imports only downward and has no import cycle', () => {
  const r = check();
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /layers: clean/);
});

test('the check finds an upward import, a sibling import, a cycle and a file in no layer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'layers-'));
  try {
    const files: Record<string, string> = {
      'errors.ts': "import { x } from './generate/a.js';\nexport const e = x;\n",
      'generate/a.ts': "import { e } from '../errors.js';\nexport const x = 1;\nexport { e };\n",
      'node/n.ts': "import type { T } from '../train/t.js';\nexport type N = T;\n",
      'train/t.ts': 'export type T = number;\n',
      'elsewhere/z.ts': 'export const z = 0;\n',
    };
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, f)), { recursive: true });
      writeFileSync(join(dir, f), text);
    }
    const r = check(dir);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /upward import: errors\.ts \[errors\] imports generate\/a\.ts \[generate\]/);
    assert.match(r.out, /sibling import: node\/n\.ts .* imports train\/t\.ts/);
    assert.match(r.out, /cycle \(2 files\): errors\.ts, generate\/a\.ts/);
    assert.match(r.out, /elsewhere\/z\.ts belongs to no layer/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
