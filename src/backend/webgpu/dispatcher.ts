/// <reference types="@webgpu/types" />
import { fail } from '../../errors.js';
import { bindBuffers, storageBindings, writeParams } from './bindings.js';
import type {
  Binding,
  BuffersOf,
  EntryTable,
  Kernel,
  NamedBuffers,
  ParamsOf,
  ParamValues,
  ParamWords,
} from './bindings.js';
import type { GpuDevice } from './device.js';
import { newStorage, USAGE, type GpuStorage } from './gpu-buffers.js';

/**
 * Encoding of kernel launches: every dispatch goes into one pending command encoder (one compute
 * pass), and the batch is submitted lazily, on `flush()` (a read, a sync, or a batch that grew past
 * `maxBatch` dispatches). Per dispatch nothing is allocated on the GPU:
 *  - pipelines are cached by kernel and specialisation constants;
 *  - each dispatch's parameters go into a 256-byte slot of a CPU staging block, written to one
 *    uniform buffer with a single `writeBuffer` at submit, and bound with a dynamic offset;
 *  - buffers and parameters are given by name and placed by the kernel's binding table (bindings.ts);
 *  - bind groups are cached by the buffers they bind (the uniform binding is the same buffer for all).
 * Reusing the uniform buffer from slot 0 in the next batch is safe: the queue orders the next
 * `writeBuffer` after the previous submit's commands.
 */

/** A compiled kernel: a pipeline plus its binding table. */
export interface Pipe<E extends EntryTable = EntryTable> {
  readonly name: string;
  readonly pipeline: GPUComputePipeline;
  readonly table: E;
  /** The storage bindings (the parameter block is @binding(0)), in the order of the buffers `run` binds. */
  readonly storage: readonly Binding[];
  /** Layout cache key: the storage bindings' numbers and access. */
  readonly layoutKey: string;
}

const SLOT = 256; // bytes per dispatch's parameter block (minUniformBufferOffsetAlignment is at most 256)
const SLOT_WORDS = SLOT / 4;
/** A batch open this long (ms) is submitted early, at the next multiple of 64 dispatches. */
const EARLY_SUBMIT_MS = 2;
/** Dispatches a recording can hold. */
const REC_SLOTS = 4096;

/** Timestamp capture of every dispatch (profiling mode): one compute pass per dispatch. */
interface ProfileBatch {
  names: string[];
  query: GPUQuerySet;
  resolve: GPUBuffer;
  read: GPUBuffer;
}

export class Dispatcher {
  readonly device: GPUDevice;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** Serial of the batch being recorded. */
  batch = 0;
  /** Dispatches recorded in the current batch. */
  pending = 0;
  private readonly maxBatch: number;
  private readonly uniform: GPUBuffer;
  private readonly staging: ArrayBuffer;
  private readonly words: ParamWords;
  private slot = 0;
  private readonly slots: number;
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly layouts = new Map<string, { bgl: GPUBindGroupLayout; pl: GPUPipelineLayout }>();
  private readonly pipes = new Map<string, Pipe>();
  private readonly groups = new Map<string, GPUBindGroup>();
  /** Bind-group cache keys per buffer id, to drop them when the buffer is destroyed. */
  private readonly groupsOf = new Map<number, string[]>();
  /** Buffers to destroy once the batch that last used them is submitted. */
  private readonly toDestroy: GpuStorage[] = [];
  /** Counters for benchmarks and tests. */
  readonly stats = { dispatches: 0, submits: 0 };
  private profile: { batches: Promise<[string, number][]>[]; cur: ProfileBatch | null } | null = null;
  /** The recording in progress (see `record`). */
  private rec: Recording | null = null;
  private nextRecId = 1;
  private readonly offsets = new Uint32Array(1);
  /** When the current batch's encoder was created (ms). */
  private batchStart = 0;

  constructor(
    readonly g: GpuDevice,
    maxBatch = 2000,
  ) {
    this.device = g.device;
    this.maxBatch = maxBatch;
    this.slots = maxBatch + 16;
    this.staging = new ArrayBuffer(this.slots * SLOT);
    const st = this.staging;
    this.words = { u32: new Uint32Array(st), i32: new Int32Array(st), f32: new Float32Array(st) };
    this.uniform = this.device.createBuffer({
      size: this.slots * SLOT,
      usage: USAGE.UNIFORM | USAGE.COPY_DST,
      label: 'mamba-ts params',
    });
  }

  // ---- pipelines -------------------------------------------------------------------------------

  /**
   * The pipeline of kernel `k` specialised with `constants` (WGSL `override`s); cached under `key`.
   * Its layout comes from the kernel's binding table: the parameter block at @group(0) @binding(0),
   * the storage bindings the entry point uses, each read-only or read-write as declared.
   */
  pipe<E extends EntryTable>(key: string, k: Kernel<E>, constants?: Record<string, number>): Pipe<E> {
    let p = this.pipes.get(key) as Pipe<E> | undefined;
    if (p) return p;
    const t = k.table;
    const storage = storageBindings(t);
    const u = t.bindings.find((b) => b.access === 'uniform');
    const bad = (why: string): never => fail('UNSUPPORTED', `internal: kernel ${k.name}: ${why}`);
    if (u && (u.group !== 0 || u.binding !== 0)) bad('its parameters must be the uniform at @group(0) @binding(0)');
    const size = t.uniform?.size ?? 0;
    if (size > SLOT) bad(`struct ${t.uniform!.struct} has ${size} bytes; a parameter block holds ${SLOT}`);
    for (const b of storage) if (b.group !== 0) bad(`binding ${b.name} is in @group(${b.group}), not 0`);
    let mod = this.modules.get(k.code);
    if (!mod) {
      mod = this.device.createShaderModule({ code: k.code, label: k.name });
      this.modules.set(k.code, mod);
    }
    const layoutKey = storage.map((b) => `${b.binding}${b.access === 'read' ? 'r' : 'w'}`).join(',');
    const { pl } = this.layout(layoutKey, storage);
    const compute: GPUProgrammableStage = { module: mod, entryPoint: k.entry };
    if (constants) compute.constants = constants;
    const pipeline = this.device.createComputePipeline({ layout: pl, compute, label: key });
    p = { name: k.name, pipeline, table: t, storage, layoutKey };
    this.pipes.set(key, p);
    return p;
  }

  private layout(key: string, storage: readonly Binding[]): { bgl: GPUBindGroupLayout; pl: GPUPipelineLayout } {
    let l = this.layouts.get(key);
    if (!l) {
      const entries: GPUBindGroupLayoutEntry[] = [
        {
          binding: 0,
          visibility: 4 /* COMPUTE */,
          buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: SLOT },
        },
      ];
      for (const b of storage) {
        const type = b.access === 'read_write' ? 'storage' : 'read-only-storage';
        entries.push({ binding: b.binding, visibility: 4, buffer: { type } });
      }
      const bgl = this.device.createBindGroupLayout({ entries, label: `layout ${key}` });
      l = { bgl, pl: this.device.createPipelineLayout({ bindGroupLayouts: [bgl] }) };
      this.layouts.set(key, l);
    }
    return l;
  }

  // ---- dispatch --------------------------------------------------------------------------------

  /**
   * Records one dispatch of `p` over a grid of (x, y, z) workgroups: `bufs` holds a buffer for every
   * storage binding of the entry point and `params` a number for every field of its uniform struct,
   * each under its WGSL name (checked against the table: see bindings.ts).
   */
  run<E extends EntryTable>(p: Pipe<E>, bufs: BuffersOf<E>, params: ParamsOf<E>, x: number, y = 1, z = 1): void {
    if (this.g.lost) fail('DEVICE', this.g.lost);
    let list = bindBuffers(p.name, p.table, bufs as NamedBuffers);
    if (this.slot >= this.slots) this.flush();
    writeParams(p.name, p.table, params as ParamValues, this.words, this.slot * SLOT_WORDS);
    if (x === 0 || y === 0 || z === 0) return;
    const max = this.g.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max)
      fail(
        'UNSUPPORTED',
        `kernel ${p.name}: a grid of (${x}, ${y}, ${z}) workgroups exceeds the device's ${max} per dimension`,
      );
    list = this.resolveAliases(p, list);
    const rec = this.rec;
    const slot = rec ? rec.slots : this.slot++;
    let key = rec ? `R${rec.id}:${p.layoutKey}` : p.layoutKey;
    for (let i = 0; i < list.length; i++) {
      const b = list[i];
      key += ':' + b.id;
      b.batch = this.batch;
    }
    let bg = this.groups.get(key);
    if (!bg) bg = this.makeGroup(key, p, list, rec?.uniform ?? this.uniform);
    if (rec) {
      // the recording's own parameter block, written now (queue writes precede the next submit)
      if (rec.slots >= REC_SLOTS) fail('UNSUPPORTED', `a recording holds at most ${REC_SLOTS} dispatches`);
      rec.slots++;
      this.device.queue.writeBuffer(rec.uniform, slot * SLOT, this.staging, this.slot * SLOT, SLOT);
      rec.ops.push({ pipeline: p.pipeline, bg, off: slot * SLOT, x, y, z, name: p.name });
      for (const b of list) if (!rec.buffers.includes(b)) rec.buffers.push(b);
    }
    const pass = this.beginPass(p.name);
    pass.setPipeline(p.pipeline);
    this.offsets[0] = slot * SLOT;
    pass.setBindGroup(0, bg, this.offsets, 0, 1);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profile) this.endPass();
    this.pending++;
    this.stats.dispatches++;
    // Long recordings are submitted in pieces so the GPU starts while the host is still encoding.
    if (
      this.pending >= this.maxBatch ||
      ((this.pending & 63) === 0 && performance.now() - this.batchStart > EARLY_SUBMIT_MS)
    )
      this.flush();
  }

  private makeGroup(key: string, p: Pipe, bufs: readonly GpuStorage[], uniform: GPUBuffer): GPUBindGroup {
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniform, offset: 0, size: SLOT } }];
    bufs.forEach((b, i) => entries.push({ binding: p.storage[i].binding, resource: { buffer: b.buffer } }));
    const bg = this.device.createBindGroup({ layout: this.layout(p.layoutKey, p.storage).bgl, entries });
    this.groups.set(key, bg);
    for (const b of bufs) {
      let l = this.groupsOf.get(b.id);
      if (!l) this.groupsOf.set(b.id, (l = []));
      l.push(key);
    }
    return bg;
  }

  /**
   * WebGPU forbids binding one buffer as writable storage and again in the same dispatch. A kernel
   * whose read-only input lives in a buffer it also writes reads a copy instead (made just before,
   * so it holds the values of the moment, as the CPU kernels see them). Kernels that support
   * in-place use natively (the scan's h0 = hOut) never get here.
   */
  private resolveAliases(p: Pipe, bufs: GpuStorage[]): GpuStorage[] {
    let out = bufs;
    const s = p.storage;
    for (let i = 0; i < bufs.length; i++) {
      for (let j = 0; j < bufs.length; j++) {
        if (j === i || s[j].access !== 'read_write' || bufs[j] !== bufs[i]) continue;
        if (s[i].access === 'read_write') {
          const both = `two outputs (bindings ${s[i].name} and ${s[j].name})`;
          fail('BAD_ARGUMENT', `kernel ${p.name}: ${both} share one GPU buffer; give them separate tensors`);
        }
        if (this.rec)
          fail(
            'UNSUPPORTED',
            `kernel ${p.name}: an input shares a buffer with an output, which a recording cannot replay`,
          );
        if (out === bufs) out = [...bufs];
        out[i] = this.copyOf(bufs[i]);
        break;
      }
    }
    return out;
  }

  /** A temporary copy of a whole buffer (destroyed after this batch). */
  private copyOf(s: GpuStorage): GpuStorage {
    const buffer = this.device.createBuffer({
      size: s.bytes,
      usage: USAGE.STORAGE | USAGE.COPY_DST | USAGE.COPY_SRC,
      label: 'alias copy',
    });
    this.copy(s.buffer, 0, buffer, 0, s.bytes);
    const c = newStorage(buffer, s.bytes, false);
    c.batch = this.batch;
    this.destroyLater(c);
    return c;
  }

  private beginPass(label: string): GPUComputePassEncoder {
    if (this.pass) return this.pass;
    if (!this.encoder) {
      this.encoder = this.device.createCommandEncoder();
      this.batchStart = performance.now();
    }
    const enc = this.encoder;
    if (this.profile) {
      const pb = this.profileBatch(); // never full here: a batch holds at most maxBatch dispatches
      const i = pb.names.length;
      pb.names.push(label);
      this.pass = enc.beginComputePass({
        timestampWrites: { querySet: pb.query, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
      });
    } else {
      this.pass = enc.beginComputePass();
    }
    return this.pass;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** Encodes a buffer-to-buffer copy (outside compute passes). */
  copy(src: GPUBuffer, srcOff: number, dst: GPUBuffer, dstOff: number, bytes: number): void {
    this.endPass();
    (this.encoder ??= this.device.createCommandEncoder()).copyBufferToBuffer(src, srcOff, dst, dstOff, bytes);
    this.pending++;
  }

  /** Submits everything recorded so far (no-op when nothing is pending). */
  flush(): void {
    if (this.g.lost) fail('DEVICE', this.g.lost);
    if (!this.encoder) {
      this.slot = 0;
      return;
    }
    this.endPass();
    const pb = this.profile?.cur;
    if (pb) {
      this.encoder.resolveQuerySet(pb.query, 0, 2 * pb.names.length, pb.resolve, 0);
      this.encoder.copyBufferToBuffer(pb.resolve, 0, pb.read, 0, 16 * pb.names.length);
    }
    const cmd = this.encoder.finish();
    this.encoder = null;
    if (this.slot > 0) this.device.queue.writeBuffer(this.uniform, 0, this.staging, 0, this.slot * SLOT);
    this.device.queue.submit([cmd]);
    this.stats.submits++;
    this.slot = 0;
    this.pending = 0;
    this.batch++;
    if (pb) {
      this.profile!.batches.push(readProfile(pb));
      this.profile!.cur = null;
    }
    for (const s of this.toDestroy.splice(0)) this.forget(s);
  }

  /** Destroys a buffer now if no unsubmitted command uses it, else right after the next submit. */
  destroyLater(s: GpuStorage): void {
    if (s.batch === this.batch && this.encoder) this.toDestroy.push(s);
    else this.forget(s);
  }

  private forget(s: GpuStorage): void {
    for (const k of this.groupsOf.get(s.id) ?? []) this.groups.delete(k);
    this.groupsOf.delete(s.id);
    s.buffer.destroy();
  }

  /** Whether an unsubmitted command uses this buffer (a queue write into it must flush first). */
  usedByPending(s: GpuStorage): boolean {
    return s.batch === this.batch && this.encoder !== null;
  }

  // ---- recording -------------------------------------------------------------------------------

  /**
   * Runs `fn` (its dispatches are queued as usual) and records them: the returned recording replays
   * the same dispatches, same buffers and same parameters, with no JavaScript in between (WebGPU's
   * answer to CUDA graphs). Everything it binds must outlive it; scratch buffers released during
   * the recording are owned by it (given back on `dispose`).
   */
  record(fn: () => void, release: (s: GpuStorage) => void): Recording {
    if (this.rec) fail('UNSUPPORTED', 'recordings do not nest');
    if (this.profile) fail('UNSUPPORTED', 'cannot record while profiling');
    const uniform = this.device.createBuffer({
      size: REC_SLOTS * SLOT,
      usage: USAGE.UNIFORM | USAGE.COPY_DST,
      label: 'recording params',
    });
    const rec = new Recording(this, this.nextRecId++, uniform, release);
    this.rec = rec;
    try {
      fn();
    } finally {
      this.rec = null;
    }
    return rec;
  }

  /** The recording in progress, if any (scratch released now belongs to it). */
  get recording(): Recording | null {
    return this.rec;
  }

  /** Encodes a recording's dispatches again. */
  replay(r: Recording): void {
    if (this.g.lost) fail('DEVICE', this.g.lost);
    if (r.disposed) fail('BAD_ARGUMENT', 'replay of a disposed recording');
    if (this.rec) fail('UNSUPPORTED', 'cannot replay while recording');
    for (const b of r.buffers) b.batch = this.batch;
    let last: GPUComputePipeline | null = null;
    const off = this.offsets;
    for (const op of r.ops) {
      const pass = this.beginPass(op.name);
      if (op.pipeline !== last || this.profile) {
        pass.setPipeline(op.pipeline);
        last = op.pipeline;
      }
      off[0] = op.off;
      pass.setBindGroup(0, op.bg, off, 0, 1);
      pass.dispatchWorkgroups(op.x, op.y, op.z);
      if (this.profile) this.endPass();
    }
    this.pending += r.ops.length;
    this.stats.dispatches += r.ops.length;
    if (this.pending >= this.maxBatch) this.flush();
  }

  /** Drops the bind groups a recording made (its buffers stay with their owners). */
  forgetRecording(r: Recording): void {
    const prefix = `R${r.id}:`;
    for (const k of [...this.groups.keys()]) if (k.startsWith(prefix)) this.groups.delete(k);
    const u = newStorage(r.uniform, REC_SLOTS * SLOT, false);
    u.batch = r.usedBatch();
    this.destroyLater(u);
  }

  // ---- profiling -------------------------------------------------------------------------------

  /** Starts recording the GPU time of every dispatch (needs the 'timestamp-query' feature). */
  startProfile(): void {
    if (!this.g.features.has('timestamp-query'))
      fail('UNSUPPORTED', 'kernel profiling needs the WebGPU timestamp-query feature, which this device lacks');
    this.flush();
    this.profile = { batches: [], cur: null };
  }

  /** Stops recording; returns [kernel name, nanoseconds] for every dispatch in order. */
  async stopProfile(): Promise<[string, number][]> {
    this.flush();
    const p = this.profile;
    this.profile = null;
    if (!p) return [];
    return (await Promise.all(p.batches)).flat();
  }

  private profileBatch(): ProfileBatch {
    const p = this.profile!;
    if (!p.cur) {
      const n = this.maxBatch;
      p.cur = {
        names: [],
        query: this.device.createQuerySet({ type: 'timestamp', count: 2 * n }),
        resolve: this.device.createBuffer({ size: 16 * n, usage: USAGE.QUERY_RESOLVE | USAGE.COPY_SRC }),
        read: this.device.createBuffer({ size: 16 * n, usage: USAGE.MAP_READ | USAGE.COPY_DST }),
      };
    }
    return p.cur;
  }
}

async function readProfile(pb: ProfileBatch): Promise<[string, number][]> {
  await pb.read.mapAsync(1);
  const t = new BigUint64Array(pb.read.getMappedRange().slice(0));
  pb.read.unmap();
  pb.read.destroy();
  pb.resolve.destroy();
  pb.query.destroy();
  return pb.names.map((n, i) => [n, Number(t[2 * i + 1] - t[2 * i])]);
}

/** Dispatches recorded by `Dispatcher.record`, replayed by `replay()`. */
export class Recording {
  readonly ops: {
    pipeline: GPUComputePipeline;
    bg: GPUBindGroup;
    off: number;
    x: number;
    y: number;
    z: number;
    name: string;
  }[] = [];
  /** Every buffer the recording binds. */
  readonly buffers: GpuStorage[] = [];
  /** Scratch buffers the recording owns. */
  readonly owned: GpuStorage[] = [];
  slots = 0;
  disposed = false;

  constructor(
    private readonly d: Dispatcher,
    readonly id: number,
    readonly uniform: GPUBuffer,
    private readonly release: (s: GpuStorage) => void,
  ) {}

  get dispatches(): number {
    return this.ops.length;
  }

  replay(): void {
    this.d.replay(this);
  }

  /** The batch that last used it, for deferred destruction. */
  usedBatch(): number {
    return this.buffers.reduce((m, b) => Math.max(m, b.batch), -1);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.d.forgetRecording(this);
    for (const s of this.owned.splice(0)) this.release(s);
  }
}
