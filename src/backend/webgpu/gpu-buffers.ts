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
  /** When it last went back to the pool (the pool's clock), for least-recently-used trimming. */
  idleSince?: number;
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

/**
 * Idle buffers by size bucket. What it keeps: what the program has already needed at once (its
 * peak of pooled bytes in use) beyond what is in use now, plus `maxIdleBytes`, so that it never holds
 * more in all (in use + idle) than that peak plus `maxIdleBytes`. A loop whose every iteration
 * allocates and frees the same large tensors (a training step: activations, the logits, the tied
 * embedding's gradients) then reuses its buffers instead of destroying and re-creating them each
 * time (a GPU allocation and a zero-fill per buffer, and new bind groups); the `maxIdleBytes` on top
 * absorbs the buckets that a step fills in a different order.
 */
export class BufferPool {
  private readonly free = new Map<number, GpuStorage[]>();
  /** Bytes of pooled buffers waiting for reuse. */
  idleBytes = 0;
  /** Bytes of every live pooled buffer, idle or in use. */
  ownedBytes = 0;
  /** The most pooled bytes in use at once so far. */
  peakInUseBytes = 0;
  private clock = 0;

  constructor(private readonly maxIdleBytes: number) {}

  /** Pooled bytes handed out and not yet given back. */
  get inUseBytes(): number {
    return this.ownedBytes - this.idleBytes;
  }

  take(bytes: number): GpuStorage | undefined {
    const list = this.free.get(bytes);
    const s = list?.pop();
    if (s) {
      this.idleBytes -= s.bytes;
      this.notePeak();
    }
    return s;
  }

  /** Counts a new pooled buffer, handed out now. */
  created(s: GpuStorage): void {
    this.ownedBytes += s.bytes;
    this.notePeak();
  }

  private notePeak(): void {
    const use = this.ownedBytes - this.idleBytes;
    if (use > this.peakInUseBytes) this.peakInUseBytes = use;
  }

  /** Returns a buffer to the pool; gives back the buffers to destroy when the pool is over its cap. */
  give(s: GpuStorage): GpuStorage[] {
    let list = this.free.get(s.bytes);
    if (!list) this.free.set(s.bytes, (list = []));
    list.push(s);
    s.idleSince = ++this.clock;
    this.idleBytes += s.bytes;
    const proven = this.peakInUseBytes - this.inUseBytes;
    if (this.idleBytes <= proven + this.maxIdleBytes) return [];
    return this.drain(proven + this.maxIdleBytes / 2);
  }

  /**
   * Removes idle buffers, least recently returned first, until at most `keep` bytes stay idle; they
   * are the caller's to destroy. (Largest first would evict the buffers a loop is about to reuse.)
   */
  drain(keep: number): GpuStorage[] {
    const out: GpuStorage[] = [];
    if (this.idleBytes <= keep) return out;
    const idle = [...this.free.values()].flat().sort((a, b) => (a.idleSince ?? 0) - (b.idleSince ?? 0));
    for (const s of idle) {
      if (this.idleBytes <= keep) break;
      const list = this.free.get(s.bytes)!;
      list.splice(list.indexOf(s), 1);
      this.idleBytes -= s.bytes;
      this.ownedBytes -= s.bytes;
      out.push(s);
    }
    return out;
  }

  /**
   * Hands over every idle buffer (the caller's to destroy) and forgets the peak: the program's demand
   * starts again from what is in use.
   */
  releaseIdle(): GpuStorage[] {
    const out = this.drain(0);
    this.peakInUseBytes = this.inUseBytes;
    return out;
  }
}
