import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { isMambaError } from '../../src/errors.js';
import { createNodeWebGpuBackend } from '../../src/backend/webgpu/node.js';
import type { WebGpuBackend, WebGpuBackendOptions } from '../../src/backend/webgpu/webgpu-backend.js';

/** The CPU Vulkan driver Debian's chromium ships (what CI uses). */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

let shared: Promise<WebGpuBackend | string> | undefined;

async function open(o: WebGpuBackendOptions = {}): Promise<WebGpuBackend | string> {
  try {
    return await createNodeWebGpuBackend(o);
  } catch (e) {
    if (!isMambaError(e, 'DEVICE')) throw e;
    // No adapter with the default Vulkan drivers: fall back to SwiftShader when it is installed.
    if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) {
      process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
      try {
        return await createNodeWebGpuBackend(o);
      } catch (e2) {
        if (!isMambaError(e2, 'DEVICE')) throw e2;
        return (e2 as Error).message;
      }
    }
    return (e as Error).message;
  }
}

/**
 * The WebGPU backend for a test, shared by the tests of one file (dispose with `disposeGpu` in
 * `after`). Without an adapter the test is skipped with the reason, except under CI=true where a
 * missing adapter fails the run (CI installs SwiftShader, so it must be there).
 */
export async function requireAdapter(t: TestContext): Promise<WebGpuBackend | null> {
  shared ??= open();
  const r = await shared;
  if (typeof r !== 'string') return r;
  if (process.env.CI === 'true') throw new Error(`CI=true but no WebGPU adapter: ${r}`);
  t.skip(`no WebGPU adapter: ${r}`);
  return null;
}

/** A backend with its own options (e.g. a forced scan chunk); the caller disposes it. */
export async function openAdapter(t: TestContext, o: WebGpuBackendOptions): Promise<WebGpuBackend | null> {
  if (!(await requireAdapter(t))) return null;
  const r = await open(o);
  if (typeof r === 'string') throw new Error(r);
  return r;
}

/** Runs `fn` with the backend's decode fusions off (`fuseNorm`: the separate kernels, for A/B checks), then on again. */
export async function unfused<T>(g: WebGpuBackend, fn: () => Promise<T>): Promise<T> {
  g.options.fuseNorm = false;
  try {
    return await fn();
  } finally {
    g.options.fuseNorm = true;
  }
}

export async function disposeGpu(): Promise<void> {
  const r = await shared;
  shared = undefined;
  if (r && typeof r !== 'string') r.dispose();
}

/** Records the key of every pipeline `g` asks for (which variant a launch took) until `restore()`. */
export function pipeKeys(g: WebGpuBackend): { keys: string[]; restore: () => void } {
  const keys: string[] = [];
  const pipe = g.d.pipe;
  g.d.pipe = ((key: string, ...rest: unknown[]) => {
    keys.push(key);
    return (pipe as (...a: unknown[]) => unknown).call(g.d, key, ...rest);
  }) as typeof pipe;
  return {
    keys,
    restore: () => {
      g.d.pipe = pipe;
    },
  };
}
