/**
 * Mamba-2's parity with PyTorch (test/models/mamba2-parity.test.ts) again on the plain SIMD128 build of
 * the WebAssembly kernels, the SSD's included (that file runs whichever build this engine takes:
 * relaxed SIMD on Node 20). Each test file runs in its own process, so the choice made here holds.
 */
process.env.MAMBA_TS_WASM_SIMD = 'simd128';
const { simdLevel } = await import('../../src/backend/cpu/wasm/module.js');
if (simdLevel() !== 'simd128') throw new Error(`expected the simd128 build, got ${simdLevel()}`);
const { cpu } = await import('../../src/backend/cpu/cpu-backend.js');
if (cpu().kernels !== 'wasm') throw new Error(`expected the WebAssembly kernels, got ${cpu().kernels}`);
await import('../models/mamba2-parity.test.js');
