import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/fixtures.js';
import { wasmKernelsSupported } from '../../src/backend/cpu/wasm/module.js';

/**
 * The committed module (src/backend/cpu/wasm/kernels.generated.ts) is what the .wat sources build to:
 * scripts/build-wasm.js rebuilds it with wabt (a devDependency) and compares byte for byte.
 */
test('kernels.generated.ts is current with src/backend/cpu/wasm/*.wat', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-wasm.js'), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});

test('the module validates here with both memory kinds (shared for threads, plain for unisolated pages)', () => {
  assert.ok(wasmKernelsSupported(false));
  assert.ok(wasmKernelsSupported(true));
});
