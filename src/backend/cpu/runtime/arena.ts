import { fail } from '../../../errors.js';

/**
 * Where CPU tensors live: WebAssembly linear memories ("arenas"), so the WebAssembly kernels read
 * weights and activations in place (no copy per token) and worker threads see the same bytes.
 *
 * - Shared arenas (Node; cross-origin-isolated pages): `WebAssembly.Memory({shared: true})`, grown
 *   on demand up to 4 GiB (wasm32's limit). Growing a shared memory never detaches earlier views:
 *   a typed array made before a grow stays valid, and new views are made from the grown buffer.
 * - Plain arenas (pages without SharedArrayBuffer): a memory of fixed size, never grown (growing
 *   would detach every tensor's typed array); a new arena is opened instead. One thread only.
 * - A model larger than one arena (mamba-1.4b in f32: 5.6 GB) spans several: when an allocation
 *   does not fit, the next arena opens. Kernels need all operands in one memory, so operands from
 *   other arenas are copied into the kernel's arena ("staged") for the call: activations are small
 *   next to weights, so this costs little (../wasm/launch.ts).
 *
 * Each arena keeps `reserve` bytes that only scratch and staging may use, so an arena filled with
 * weights still has room for the buffers its kernels need. Address 0..63 is never handed out (0
 * means "no tensor" to the kernels). Blocks are 64-byte aligned (cache lines, SIMD loads).
 */
export interface ArenaOptions {
  /** Use shared memories (default: when SharedArrayBuffer exists and, in browsers, the page is cross-origin isolated). */
  shared?: boolean;
  /** Bytes per arena for regular allocations plus reserve (default 4 GiB - 64 KiB; tests use small arenas to exercise staging). */
  arenaBytes?: number;
  /** Bytes kept for scratch and staging in each arena (default 128 MiB, or 1/8 of a small arena). */
  reserveBytes?: number;
}

const PAGE = 65536;
const MAX_PAGES = 65536;
const ALIGN = 64;
const GROW_STEP = 64 << 20; // grow shared memories by at least 64 MiB (each grow makes a new buffer object)
const PLAIN_DEFAULT = 256 << 20; // plain arenas: 256 MiB each, or the size of a bigger request

export function canShareMemory(): boolean {
  if (typeof SharedArrayBuffer === 'undefined') return false;
  const g = globalThis as { crossOriginIsolated?: boolean };
  return g.crossOriginIsolated === undefined || g.crossOriginIsolated;
}

export class Arena {
  /** Free blocks [offset, offset + size), sorted by offset, coalesced. */
  private readonly freeList: { off: number; size: number }[] = [];
  /** Bytes of each live block, by offset. */
  private readonly sizes = new Map<number, number>();
  /** End of the highest block handed out. */
  private top = ALIGN;
  /** Highest `top` ever: memory below it may hold old data. */
  private highWater = ALIGN;
  private buf: ArrayBufferLike;
  /** Live bytes, for stats. */
  used = 0;

  constructor(
    readonly id: number,
    readonly memory: WebAssembly.Memory,
    readonly shared: boolean,
    /** Highest byte offset any block may reach. */
    readonly capacity: number,
    /** Regular blocks stay below capacity - reserve. */
    readonly reserve: number,
    private readonly onBuffer: (buf: ArrayBufferLike, a: Arena) => void,
  ) {
    this.buf = memory.buffer;
    onBuffer(this.buf, this);
  }

  /** The memory's current buffer (a new object after each grow of a shared memory). */
  buffer(): ArrayBufferLike {
    if (this.shared && this.buf.byteLength < this.top) {
      this.buf = this.memory.buffer;
      this.onBuffer(this.buf, this);
    }
    return this.buf;
  }

  /**
   * A block of `bytes` (64-byte aligned), or -1 when it does not fit. `scratch` may use the reserve.
   * `zero`: the block reads as zeros (reused memory is cleared; fresh pages are zero anyway).
   */
  alloc(bytes: number, scratch = false, zero = true): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    const limit = scratch ? this.capacity : this.capacity - this.reserve;
    for (let i = 0; i < this.freeList.length; i++) {
      const f = this.freeList[i];
      if (f.size >= size && f.off + size <= limit) {
        const off = f.off;
        if (f.size === size) this.freeList.splice(i, 1);
        else {
          f.off += size;
          f.size -= size;
        }
        this.take(off, size);
        if (zero) new Uint8Array(this.buffer(), off, size).fill(0); // reused memory is dirty; fresh pages are zero
        return off;
      }
    }
    if (this.top + size > limit) return -1;
    const off = this.top;
    this.top += size;
    if (this.shared) {
      const have = this.memory.buffer.byteLength;
      if (this.top > have) {
        const room = Math.ceil(this.capacity / PAGE) - have / PAGE;
        this.memory.grow(Math.min(room, Math.max(Math.ceil((this.top - have) / PAGE), GROW_STEP / PAGE)));
      }
    }
    if (zero && off < this.highWater) new Uint8Array(this.buffer(), off, Math.min(size, this.highWater - off)).fill(0);
    this.highWater = Math.max(this.highWater, this.top);
    this.take(off, size);
    return off;
  }

  private take(off: number, size: number): void {
    this.sizes.set(off, size);
    this.used += size;
  }

  free(off: number): void {
    const size = this.sizes.get(off);
    if (size === undefined) fail('BAD_ARGUMENT', `arena ${this.id}: no block at offset ${off} (freed twice?)`);
    this.sizes.delete(off);
    this.used -= size;
    if (off + size === this.top) {
      this.top = off;
      // the block below the new top may be free too
      const last = this.freeList[this.freeList.length - 1];
      if (last && last.off + last.size === this.top) {
        this.top = last.off;
        this.freeList.pop();
      }
      return;
    }
    // insert sorted and coalesce with neighbours
    let lo = 0,
      hi = this.freeList.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.freeList[mid].off < off) lo = mid + 1;
      else hi = mid;
    }
    const prev = this.freeList[lo - 1];
    const next = this.freeList[lo];
    if (prev && prev.off + prev.size === off) {
      prev.size += size;
      if (next && prev.off + prev.size === next.off) {
        prev.size += next.size;
        this.freeList.splice(lo, 1);
      }
    } else if (next && off + size === next.off) {
      next.off = off;
      next.size += size;
    } else {
      this.freeList.splice(lo, 0, { off, size });
    }
  }

  /** Size of the live block at `off`. */
  sizeOf(off: number): number | undefined {
    return this.sizes.get(off);
  }
}

/** All arenas of one CPU backend. */
export class ArenaSet {
  readonly arenas: Arena[] = [];
  readonly shared: boolean;
  private readonly arenaBytes: number;
  private readonly reserveBytes: number;
  /** Every buffer object an arena has handed out -> that arena (views are matched by `.buffer`). */
  private readonly byBuffer = new WeakMap<ArrayBufferLike, Arena>();
  /** Called when an arena opens (the thread pool attaches its memory to the workers). */
  onNewArena: ((a: Arena) => void) | undefined;

  constructor(o: ArenaOptions = {}) {
    this.shared = o.shared ?? canShareMemory();
    const max = MAX_PAGES * PAGE - PAGE;
    this.arenaBytes = Math.min(o.arenaBytes ?? max, max);
    if (!(this.arenaBytes >= 1 << 20)) fail('BAD_ARGUMENT', `arenaBytes must be at least 1 MiB, got ${o.arenaBytes}`);
    this.reserveBytes = o.reserveBytes ?? Math.min(128 << 20, Math.floor(this.arenaBytes / 8));
  }

  /** A regular block: the first arena with room, or a new one. `zero`: cleared (see Arena.alloc). */
  alloc(bytes: number, zero = true): { arena: Arena; off: number } {
    for (const a of this.arenas) {
      const off = a.alloc(bytes, false, zero);
      if (off >= 0) return { arena: a, off };
    }
    const a = this.open(bytes);
    const off = a.alloc(bytes, false, zero);
    if (off < 0)
      fail(
        'UNSUPPORTED',
        `a tensor of ${bytes} bytes does not fit in one WebAssembly memory (at most ${this.arenaBytes - this.reserveBytes} bytes for tensors)`,
      );
    return { arena: a, off };
  }

  private open(bytes: number): Arena {
    const id = this.arenas.length;
    let memory: WebAssembly.Memory;
    let capacity: number;
    const reserve = this.reserveBytes;
    if (this.shared) {
      capacity = this.arenaBytes;
      memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    } else {
      capacity = Math.min(
        this.arenaBytes,
        Math.max(Math.min(PLAIN_DEFAULT, this.arenaBytes), Math.ceil((bytes + reserve + 2 * ALIGN) / PAGE) * PAGE),
      );
      const pages = Math.ceil(capacity / PAGE);
      memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    }
    const a = new Arena(id, memory, this.shared, capacity, reserve, (buf, ar) => this.byBuffer.set(buf, ar));
    this.arenas.push(a);
    this.onNewArena?.(a);
    return a;
  }

  /** The first arena (opened if none is yet): where calls on foreign buffers run. */
  first(): Arena {
    return this.arenas[0] ?? this.open(0);
  }

  /** The arena a typed array views, or undefined (a plain ArrayBuffer). */
  arenaOf(data: ArrayBufferView): Arena | undefined {
    return this.byBuffer.get(data.buffer);
  }

  /** Scratch in a given arena (may use its reserve). */
  allocScratch(a: Arena, bytes: number): number {
    const off = a.alloc(bytes, true);
    if (off < 0)
      fail(
        'UNSUPPORTED',
        `arena ${a.id}: no room for ${bytes} bytes of kernel scratch (reserve ${this.reserveBytes} bytes); use a smaller batch or sequence, or more reserve`,
      );
    return off;
  }

  /** Bytes live in all arenas. */
  get usedBytes(): number {
    return this.arenas.reduce((s, a) => s + a.used, 0);
  }
}
