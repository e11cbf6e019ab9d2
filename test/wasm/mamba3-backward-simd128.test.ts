/**
 * The Mamba-3 backward kernel tests again on the plain SIMD128 build (mamba3-backward.test.ts runs whichever build this
 * engine takes: relaxed SIMD on Node 20 and current browsers). Each test file runs in its own process,
 * so the choice made here holds for every kernel these tests compile, the pool's included.
 */
process.env.MAMBA_TS_WASM_SIMD = 'simd128';
const { simdLevel } = await import('../../src/backend/cpu/wasm/module.js');
if (simdLevel() !== 'simd128') throw new Error(`expected the simd128 build, got ${simdLevel()}`);
await import('./mamba3-backward.test.js');
