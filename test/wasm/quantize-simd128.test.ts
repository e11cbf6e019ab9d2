/** The quantisation kernel tests again on the plain SIMD128 build (as kernels-simd128.test.ts). */
process.env.MAMBA_TS_WASM_SIMD = 'simd128';
const { simdLevel } = await import('../../src/backend/cpu/wasm/module.js');
if (simdLevel() !== 'simd128') throw new Error(`expected the simd128 build, got ${simdLevel()}`);
await import('./quantize.test.js');
