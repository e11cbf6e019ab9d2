import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MODULE = fileURLToPath(new URL('../../src/backend/cpu/wasm/module.js', import.meta.url));

/** simdLevel() in a fresh process with MAMBA_TS_WASM_SIMD set (the choice is made once per process). */
function levelWith(value: string | undefined): { status: number | null; out: string } {
  const env = { ...process.env };
  if (value === undefined) delete env.MAMBA_TS_WASM_SIMD;
  else env.MAMBA_TS_WASM_SIMD = value;
  const code = `import(${JSON.stringify(MODULE)}).then((m) => { try { console.log(m.simdLevel()); } catch (e) { console.log(e.message); process.exit(3); } })`;
  const r = spawnSync(process.execPath, ['-e', code], { env, encoding: 'utf8' });
  return { status: r.status, out: r.stdout.trim() };
}

test('the relaxed-SIMD build is chosen by default on Node 20 (its V8 flag is set by the loader), simd128 on request', () => {
  assert.deepEqual(levelWith(undefined), { status: 0, out: 'relaxed' });
  assert.deepEqual(levelWith('auto'), { status: 0, out: 'relaxed' });
  assert.deepEqual(levelWith('relaxed'), { status: 0, out: 'relaxed' });
  assert.deepEqual(levelWith('simd128'), { status: 0, out: 'simd128' });
});

test('MAMBA_TS_WASM_SIMD with an unknown value is a clear error', () => {
  const r = levelWith('avx512');
  assert.equal(r.status, 3);
  assert.match(r.out, /MAMBA_TS_WASM_SIMD must be simd128, relaxed or auto, got "avx512"/);
});
