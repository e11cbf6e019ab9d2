import { after } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';

/**
 * What the WebAssembly kernel tests share: the TypeScript reference backend (`ts`, the specification),
 * the WebAssembly one on the calling thread (`wa`), and backends on a thread pool, disposed after the
 * file's tests. Importing this module in an engine without the kernels fails the file at once.
 */
export const ts = new CpuBackend({ kernels: 'ts' });
export const wa = new CpuBackend({ kernels: 'wasm' });
assert.equal(wa.kernels, 'wasm', 'this engine runs the WebAssembly kernels');
const pools: CpuBackend[] = [];
after(() => {
  for (const b of pools) b.dispose();
});

/** A WebAssembly backend whose kernels split over `threads` threads. */
export async function wasmOnThreads(threads: number): Promise<CpuBackend> {
  const bk = new CpuBackend({ kernels: 'wasm' });
  await bk.useThreads(threads, { splitProductsFrom: 1 << 15 }); // (small products split too)
  pools.push(bk);
  return bk;
}
