import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool, bucketBytes, newStorage, type GpuStorage } from '../../src/backend/webgpu/gpu-buffers.js';

/**
 * The WebGPU buffer pool's bookkeeping (no GPU needed: storages with a stand-in buffer). A loop that
 * allocates and frees the same tensors every iteration (a training step) must stop creating buffers
 * after its first iteration, and the pool must never hold more than its peak in use plus the cap.
 */

const MiB = 1 << 20;

/** A pool with a `take or create` like the backend's, counting creations and destructions. */
function harness(maxIdle: number) {
  const pool = new BufferPool(maxIdle);
  const n = { created: 0, destroyed: 0, maxOwned: 0 };
  const get = (bytes: number): GpuStorage => {
    const size = bucketBytes(bytes);
    let s = pool.take(size);
    if (!s) {
      s = newStorage({} as GPUBuffer, size, true);
      pool.created(s);
      n.created++;
    }
    n.maxOwned = Math.max(n.maxOwned, pool.ownedBytes);
    return s;
  };
  const put = (s: GpuStorage): void => {
    n.destroyed += pool.give(s).length;
  };
  return { pool, n, get, put };
}

test('a repeated step reuses its buffers: nothing is created or destroyed after the first iteration', () => {
  const { pool, n, get, put } = harness(64 * MiB);
  // a step: persistent weights, then activations well above the idle cap, freed in a different order
  const weights = [get(100 * MiB), get(50 * MiB)];
  const step = () => {
    const live: GpuStorage[] = [];
    for (let i = 0; i < 12; i++) live.push(get((20 + 7 * i) * MiB));
    live.push(get(160 * MiB), get(160 * MiB));
    for (let i = 0; i < live.length; i += 2) put(live[i]);
    live.push(get(160 * MiB), get(33 * MiB));
    for (let i = 1; i < live.length; i += 2) put(live[i]);
    put(live[live.length - 2]);
  };
  step();
  const created = n.created;
  for (let i = 0; i < 5; i++) step();
  assert.equal(n.created, created, 'buffers created after the first step');
  assert.equal(n.destroyed, 0);
  assert.equal(
    pool.inUseBytes,
    weights.reduce((s, w) => s + w.bytes, 0),
  );
  assert.ok(pool.ownedBytes <= pool.peakInUseBytes + 64 * MiB, 'owned within the peak plus the cap');
});

test('the pool keeps at most its peak in use plus the cap, and releases idle memory on request', () => {
  const { pool, n, get, put } = harness(16 * MiB);
  // distinct sizes every time: no reuse possible, so idle buffers pile up until the cap trims them
  for (let i = 0; i < 40; i++) put(get((8 + i) * MiB));
  assert.ok(n.destroyed > 0, 'buffers beyond the cap are destroyed');
  assert.ok(n.maxOwned <= pool.peakInUseBytes + 16 * MiB + bucketBytes(47 * MiB));
  assert.ok(pool.idleBytes <= 16 * MiB + pool.peakInUseBytes);
  // a large job, then everything idle is released and the peak forgotten
  const big = [get(300 * MiB), get(300 * MiB)];
  for (const s of big) put(s);
  assert.ok(pool.idleBytes >= 600 * MiB, 'the peak job’s buffers stay for reuse');
  const gone = pool.releaseIdle();
  assert.equal(pool.idleBytes, 0);
  assert.equal(pool.ownedBytes, 0);
  assert.equal(pool.peakInUseBytes, 0);
  assert.ok(gone.length >= 2);
  // after the reset, the cap is the plain one again
  for (let i = 0; i < 4; i++) put(get(10 * MiB + i));
  assert.ok(pool.idleBytes <= 16 * MiB + pool.peakInUseBytes);
});
