import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Arena, ArenaSet } from '../../src/backend/cpu/runtime/arena.js';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { isMambaError } from '../../src/errors.js';
import { rand } from '../helpers/random.js';

/**
 * Tensor memory (backend/cpu/runtime/arena.ts): blocks are aligned, disjoint, reused after free (and
 * cleared), coalesced; a set opens new arenas when one is full and maps every view back to its
 * arena; the CPU backend frees blocks on dispose and keeps working across arenas.
 */
function blocks(a: Arena, sizes: number[]): number[] {
  return sizes.map((s) => a.alloc(s));
}

test('arena blocks are 64-byte aligned, disjoint, never at address 0', () => {
  const set = new ArenaSet({ arenaBytes: 1 << 20, reserveBytes: 1 << 16 });
  const first = set.alloc(10);
  const offs = [first.off, ...blocks(first.arena, [1, 63, 64, 65, 1000, 7])];
  for (const o of offs) assert.equal(o % 64, 0);
  assert.ok(offs.every((o) => o > 0));
  const sorted = [...offs].sort((x, y) => x - y);
  for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i] >= sorted[i - 1] + 64, 'disjoint');
});

test('freed blocks are reused, cleared, and coalesced with their neighbours', () => {
  const set = new ArenaSet({ arenaBytes: 1 << 20, reserveBytes: 1 << 16 });
  const a = set.alloc(64).arena;
  const [x, y, z] = blocks(a, [128, 128, 128]) as [number, number, number];
  new Uint8Array(a.buffer(), y, 128).fill(7);
  a.free(y);
  const y2 = a.alloc(100);
  assert.equal(y2, y, 'first fit reuses the hole');
  assert.ok(
    new Uint8Array(a.buffer(), y2, 128).every((v) => v === 0),
    'reused memory is cleared',
  );
  a.free(x);
  a.free(y2);
  assert.equal(a.alloc(256), x, 'two neighbours coalesce into one hole');
  assert.throws(
    () => a.free(12345),
    (e) => isMambaError(e, 'BAD_ARGUMENT'),
  );
  void z;
});

test('a full arena opens the next one; views map back to their arena; the reserve is for scratch only', () => {
  const set = new ArenaSet({ arenaBytes: 1 << 20, reserveBytes: 256 << 10 });
  const b1 = set.alloc(600 << 10);
  const b2 = set.alloc(600 << 10); // does not fit below capacity - reserve
  assert.notEqual(b1.arena, b2.arena);
  assert.equal(set.arenas.length, 2);
  const v = new Float32Array(b2.arena.buffer(), b2.off, 4);
  assert.equal(set.arenaOf(v), b2.arena);
  assert.equal(set.arenaOf(new Float32Array(4)), undefined);
  const s = set.allocScratch(b1.arena, 200 << 10); // fits in the reserve
  assert.ok(s > 0);
  assert.throws(
    () => set.alloc(2 << 20),
    (e) => isMambaError(e, 'UNSUPPORTED') && /does not fit/.test(e.message),
  );
});

test('CPU tensors: dispose returns memory; a model-sized load spans arenas and stays correct', () => {
  const bk = new CpuBackend({ kernels: 'wasm', arenas: { arenaBytes: 1 << 20, reserveBytes: 128 << 10 } });
  const before = bk.arenas!.usedBytes;
  const t = bk.alloc([1000]);
  assert.ok(bk.arenas!.usedBytes >= before + 4000);
  t.dispose();
  assert.equal(bk.arenas!.usedBytes, before);
  // weights spread over several 1 MiB memories; a product reading across them equals a one-memory backend's
  const ref = new CpuBackend({ kernels: 'wasm' });
  const W = rand(300 * 700, 1),
    X = rand(3 * 700, 2);
  const ws = [0, 1, 2].map(() => bk.upload(W, [300, 700]));
  const x = bk.upload(X, [3, 700]);
  assert.ok(bk.arenas!.arenas.length >= 3);
  const want = ref.alloc([3, 300]);
  ref.matmul(want, ref.upload(X, [3, 700]), ref.upload(W, [300, 700]), { transB: true });
  for (const w of ws) {
    const o = bk.alloc([3, 300]);
    bk.matmul(o, x, w, { transB: true });
    assert.deepEqual(bk.readSync(o), ref.readSync(want));
  }
});
