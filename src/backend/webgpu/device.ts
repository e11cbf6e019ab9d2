/// <reference types="@webgpu/types" />
import { fail } from '../../errors.js';

/**
 * Opening a WebGPU device from any `GPU` object (a browser's `navigator.gpu`, or Dawn's in Node via
 * `node.ts`), with the adapter's own limits requested rather than the spec's defaults, and the
 * device's failures (loss, validation errors, out-of-memory) turned into MambaError DEVICE.
 *
 * Nothing here imports from Node: the browser build uses this file as is.
 */
export interface DeviceOptions {
  /** Adapter preference (default 'high-performance'). */
  powerPreference?: GPUPowerPreference;
  /** Use the adapter's fallback (software) implementation only. */
  forceFallbackAdapter?: boolean;
  /** Ask for timestamp queries (kernel profiling) when the adapter has them (default true). */
  timestamps?: boolean;
}

/** The limits the kernels depend on, as granted to the device. */
export interface GpuLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
  minUniformBufferOffsetAlignment: number;
}

export interface GpuDevice {
  readonly device: GPUDevice;
  /** Kept alive with the device: Dawn in Node can crash when the GPU or adapter object is collected first. */
  readonly keepAlive: readonly unknown[];
  readonly adapterInfo: { vendor: string; architecture: string; device: string; description: string };
  readonly limits: GpuLimits;
  readonly features: ReadonlySet<string>;
  /**
   * A CPU implementation (SwiftShader, llvmpipe): workgroups run one after another there, so kernels
   * prefer few, full workgroups over the many small ones that fill a GPU.
   */
  readonly cpuAdapter: boolean;
  /** Set once the device is lost (or destroyed): every later use fails with this message. */
  lost: string | undefined;
  /** First uncaptured error since the last check (a validation error is a bug in mamba-ts). */
  error: string | undefined;
}

/** Limits we ask for: everything the adapter offers for these keys. */
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxBindingsPerBindGroup',
  'maxDynamicUniformBuffersPerPipelineLayout',
] as const;

export async function openDevice(gpu: GPU, o: DeviceOptions = {}): Promise<GpuDevice> {
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({
      powerPreference: o.powerPreference ?? 'high-performance',
      forceFallbackAdapter: !!o.forceFallbackAdapter,
    });
  } catch (e) {
    return fail('DEVICE', `WebGPU: requesting an adapter failed: ${(e as Error).message}`);
  }
  if (!adapter) {
    return fail(
      'DEVICE',
      'WebGPU: no adapter found (no GPU or driver; in Node set VK_ICD_FILENAMES to a Vulkan driver such as SwiftShader, in a browser enable WebGPU)',
    );
  }
  const requiredLimits: Record<string, number> = {};
  const al = adapter.limits as unknown as Record<string, number>;
  for (const k of WANTED_LIMITS) if (typeof al[k] === 'number') requiredLimits[k] = al[k];
  const want: GPUFeatureName[] = [];
  if (o.timestamps !== false && adapter.features.has('timestamp-query')) want.push('timestamp-query');
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures: want, label: 'mamba-ts' });
  } catch (e) {
    return fail('DEVICE', `WebGPU: requesting a device failed: ${(e as Error).message}`);
  }
  const info = adapter.info ?? ({} as GPUAdapterInfo);
  const dl = device.limits;
  const g: GpuDevice = {
    device,
    keepAlive: [gpu, adapter],
    adapterInfo: {
      vendor: info.vendor ?? '',
      architecture: info.architecture ?? '',
      device: info.device ?? '',
      description: info.description ?? '',
    },
    limits: {
      maxStorageBufferBindingSize: dl.maxStorageBufferBindingSize,
      maxBufferSize: dl.maxBufferSize,
      maxComputeWorkgroupStorageSize: dl.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: dl.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupsPerDimension: dl.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: dl.maxStorageBuffersPerShaderStage,
      minUniformBufferOffsetAlignment: dl.minUniformBufferOffsetAlignment,
    },
    features: new Set([...device.features] as string[]),
    cpuAdapter:
      /swiftshader|llvmpipe|lavapipe|warp/i.test(
        `${info.vendor} ${info.architecture} ${info.device} ${info.description}`,
      ) || !!(info as { isFallbackAdapter?: boolean }).isFallbackAdapter,
    lost: undefined,
    error: undefined,
  };
  if (g.limits.maxComputeInvocationsPerWorkgroup < 256 || g.limits.maxStorageBuffersPerShaderStage < 8) {
    fail(
      'DEVICE',
      `WebGPU: the device allows ${g.limits.maxComputeInvocationsPerWorkgroup} invocations per workgroup and ${g.limits.maxStorageBuffersPerShaderStage} storage buffers per stage; mamba-ts needs 256 and 8`,
    );
  }
  void device.lost.then((l) => {
    g.lost =
      l.reason === 'destroyed'
        ? 'the WebGPU device was destroyed (backend disposed)'
        : `the WebGPU device was lost: ${l.message || l.reason}`;
  });
  device.addEventListener('uncapturederror', (ev) => {
    const err = (ev as GPUUncapturedErrorEvent).error;
    g.error ??= `${err.constructor?.name ?? 'GPUError'}: ${err.message}`;
  });
  return g;
}
