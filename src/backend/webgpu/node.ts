/// <reference types="@webgpu/types" />
import { fail } from '../../errors.js';
import { createWebGpuBackend, type CreateWebGpuOptions } from './create.js';
import type { WebGpuBackend } from './webgpu-backend.js';

/**
 * WebGPU in Node through Dawn (the `webgpu` package). Node-only; browsers use create.ts directly.
 *
 * Dawn options come from `MAMBA_TS_DAWN` (see `dawnFlagsFromEnv`). Without a GPU, a CPU Vulkan driver works:
 * `VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json` (Debian's chromium ships SwiftShader).
 *
 * Dawn keeps Node's event loop alive while a device exists: call `backend.dispose()` when done.
 */
export async function nodeGpu(flags: readonly string[] = dawnFlagsFromEnv()): Promise<GPU> {
  let mod: { create: (flags: string[]) => GPU; globals: object };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
  } catch (e) {
    return fail('DEVICE', `WebGPU in Node needs the "webgpu" package (Dawn): ${(e as Error).message}`);
  }
  // Dawn's classes (GPUBufferUsage, ...) as globals, for code written against the browser API.
  for (const [k, v] of Object.entries(mod.globals))
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  return mod.create([...flags]);
}

/**
 * Dawn flags: `MAMBA_TS_DAWN` (';'-separated, e.g. `backend=vulkan;enable-dawn-features=dump_shaders`),
 * else the default: full-resolution timestamps (browsers quantize them; kernel profiling needs them).
 */
export function dawnFlagsFromEnv(): string[] {
  const v = typeof process !== 'undefined' ? process.env.MAMBA_TS_DAWN : undefined;
  if (v === undefined) return ['disable-dawn-features=timestamp_quantization'];
  return v
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The WebGPU backend on Dawn. */
export async function createNodeWebGpuBackend(
  o: Omit<CreateWebGpuOptions, 'gpu'> & { dawnFlags?: readonly string[] } = {},
): Promise<WebGpuBackend> {
  const gpu = await nodeGpu(o.dawnFlags ?? dawnFlagsFromEnv());
  return createWebGpuBackend({ ...o, gpu });
}
