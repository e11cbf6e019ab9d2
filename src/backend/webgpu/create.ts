/// <reference types="@webgpu/types" />
import { fail } from '../../errors.js';
import { openDevice, type DeviceOptions } from './device.js';
import { WebGpuBackend, type WebGpuBackendOptions } from './webgpu-backend.js';

export interface CreateWebGpuOptions extends DeviceOptions, WebGpuBackendOptions {
  /** The WebGPU entry point; default `navigator.gpu` (browsers, Deno). In Node use `node.ts`. */
  gpu?: GPU;
}

/**
 * Creates the WebGPU backend on the given `GPU` (or the page's `navigator.gpu`). Browser-safe:
 * imports nothing from Node. In Node, `createNodeWebGpuBackend` (node.ts) supplies Dawn's GPU.
 *
 *   const backend = await createWebGpuBackend();          // in a page
 *   ... backend.dispose();                                // releases the device
 */
export async function createWebGpuBackend(o: CreateWebGpuOptions = {}): Promise<WebGpuBackend> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  const gpu = o.gpu ?? nav?.gpu;
  if (!gpu) {
    return fail(
      'DEVICE',
      'WebGPU is not available here: no navigator.gpu (in a browser, use one with WebGPU enabled; in Node, use createNodeWebGpuBackend from backend/webgpu/node.js)',
    );
  }
  const g = await openDevice(gpu, o);
  return new WebGpuBackend(g, o);
}
