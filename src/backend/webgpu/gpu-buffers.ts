/// <reference types="@webgpu/types" />

/**
 * GPU storage behind a tensor, and the pool that recycles it. Transient tensors (activations,
 * scratch) come from size buckets (powers of two split in quarters, so at most 25% is wasted) and go
 * back to the pool on `dispose()`; reuse needs no waiting because the queue runs commands in order.
 */

// GPUBufferUsage and GPUMapMode values (WebGPU spec constants), so nothing depends on globals being installed.
export const USAGE = {
  MAP_READ: 0x1,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  UNIFORM: 0x40,
  STORAGE: 0x80,
  QUERY_RESOLVE: 0x200,
} as const;
export const MAP_READ = 0x1;

export interface GpuStorage {
  buffer: GPUBuffer;
  /** Size of the GPU buffer (a multiple of 16). */
  bytes: number;
  /** Identity for bind-group caching. */
  readonly id: number;
  /** Serial of the last command batch that bound it (uploads into it must wait for that batch's submit). */
  batch: number;
  /** Returned to the pool on free (otherwise destroyed). */
  readonly pooled: boolean;
}

let nextId = 1;
export function newStorage(buffer: GPUBuffer, bytes: number, pooled: boolean): GpuStorage {
  return { buffer, bytes, id: nextId++, batch: -1, pooled };
}

/** Bucket size for a request: 256 B minimum, then 2^k * {1, 1.25, 1.5, 1.75}. */
export function bucketBytes(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes));
  const q = p / 4;
  return Math.ceil(bytes / q) * q;
}

export class BufferPool {
  private readonly free = new Map<number, GpuStorage[]>();
  idleBytes = 0;

  constructor(private readonly maxIdleBytes: number) {}

  take(bytes: number): GpuStorage | undefined {
    const list = this.free.get(bytes);
    const s = list?.pop();
    if (s) this.idleBytes -= s.bytes;
    return s;
  }

  /** Returns a buffer to the pool; gives back the buffers to destroy when the pool is over its cap. */
  give(s: GpuStorage): GpuStorage[] {
    let list = this.free.get(s.bytes);
    if (!list) this.free.set(s.bytes, (list = []));
    list.push(s);
    this.idleBytes += s.bytes;
    if (this.idleBytes <= this.maxIdleBytes) return [];
    return this.drain(this.maxIdleBytes / 2);
  }

  /** Removes idle buffers (largest first) until at most `keep` bytes stay idle. */
  drain(keep: number): GpuStorage[] {
    const out: GpuStorage[] = [];
    const sizes = [...this.free.keys()].sort((a, b) => b - a);
    for (const size of sizes) {
      const list = this.free.get(size)!;
      while (list.length && this.idleBytes > keep) {
        const s = list.pop()!;
        this.idleBytes -= s.bytes;
        out.push(s);
      }
    }
    return out;
  }
}
