import { LateWaits } from '../../src/backend/cpu/runtime/late-waits.js';
import { MIN_SPLIT_PRODUCT, ThreadPool } from '../../src/backend/cpu/runtime/pool.js';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend, type CpuKernels } from '../../src/backend/cpu/cpu-backend.js';
import type { DType } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { f32ToF16Bits } from '../../src/tensor/dtype.js';
import { rand } from '../helpers/random.js';

/**
 * The worker pool: results on 2 and 3 threads are identical, bit for bit, to one thread (every
 * output element is computed by the same code whichever thread takes its chunk), for the
 * WebAssembly kernels and for the TypeScript reference kernels; arenas opened after the workers
 * started reach them; products below the pool's bound run on the calling thread; bad thread counts are
 * refused.
 */
const backends: CpuBackend[] = [];
after(() => {
  for (const b of backends) b.dispose();
});

async function make(kernels: CpuKernels, threads: number): Promise<CpuBackend> {
  const b = new CpuBackend({ kernels });
  await b.useThreads(threads, { splitProductsFrom: 1 << 15 }); // (small products split too)
  backends.push(b);
  assert.equal(b.threads, threads);
  return b;
}

function up(bk: CpuBackend, data: Float32Array, shape: number[], dtype: DType = 'f32'): Tensor {
  if (dtype === 'f16') return bk.upload(Uint16Array.from(data, f32ToF16Bits), shape, 'f16');
  return bk.upload(data, shape, dtype);
}

/** Runs the same products, scans and convs on a backend; returns every output. */
function workload(bk: CpuBackend): Float32Array[] {
  const outs: Float32Array[] = [];
  for (const [m, q, p] of [
    [1, 768, 3072],
    [3, 300, 77],
    [1, 1536, 80],
    [40, 256, 300],
    [17, 96, 1000],
    [21, 333, 131], // gemm with a depth that is not a multiple of 32 (q8/q4: a padded block), odd m and p
  ] as const) {
    for (const dt of ['f32', 'f16', 'q8', 'q4'] as const) {
      const x = up(bk, rand(m * q, m + q), [m, q]);
      const w = up(bk, rand(p * q, p), [p, q], dt);
      const bias = up(bk, rand(p, 5), [p]);
      const o = bk.alloc([m, p]);
      bk.matmul(o, x, w, { transB: true, bias });
      outs.push(bk.readSync(o) as Float32Array);
    }
  }
  // a transposed product (training's shapes) and an accumulating one
  const a = up(bk, rand(64 * 50, 7), [64, 50]),
    b = up(bk, rand(64 * 90, 8), [64, 90]);
  const o = up(bk, rand(50 * 90, 9), [50, 90]);
  bk.matmul(o, a, b, { transA: true, accumulate: true });
  outs.push(bk.readSync(o) as Float32Array);
  for (const [bt, l, e, n] of [
    [1, 1, 1536, 16],
    [2, 37, 203, 7],
    [5, 20, 64, 16],
  ] as const) {
    const u = up(bk, rand(bt * l * e, 11), [bt, l, e]);
    const delta = up(bk, rand(bt * l * e, 12), [bt, l, e]);
    const A = up(
      bk,
      Float32Array.from(rand(e * n, 13), (v) => -Math.exp(v)),
      [e, n],
    );
    const BC = up(bk, rand(bt * l * 2 * n, 14), [bt, l, 2 * n]);
    const D = up(bk, rand(e, 15), [e]),
      z = up(bk, rand(bt * l * e, 16), [bt, l, e]),
      db = up(bk, rand(e, 17), [e]);
    const h = up(bk, rand(bt * e * n, 18), [bt, e, n]);
    const y = bk.alloc([bt, l, e]);
    bk.selectiveScan({
      y,
      u,
      delta,
      A,
      B: BC.narrow(0, n),
      C: BC.narrow(n, n),
      D,
      z,
      deltaBias: db,
      deltaSoftplus: true,
      h0: h,
      hOut: h,
    });
    outs.push(bk.readSync(y) as Float32Array, bk.readSync(h) as Float32Array);
    // the scan's gradient (split by batch rows; the batch sums in row order)
    const h0 = up(bk, rand(bt * e * n, 23), [bt, e, n]);
    const g = {
      du: bk.alloc([bt, l, e]),
      dDelta: bk.alloc([bt, l, e]),
      dA: bk.alloc([e, n]),
      dB: bk.alloc([bt, l, n]),
      dC: bk.alloc([bt, l, n]),
      dD: bk.alloc([e]),
      dz: bk.alloc([bt, l, e]),
      dDeltaBias: bk.alloc([e]),
      dh0: bk.alloc([bt, e, n]),
    };
    bk.selectiveScanBackward({
      dy: up(bk, rand(bt * l * e, 24), [bt, l, e]),
      u,
      delta,
      A,
      B: BC.narrow(0, n),
      C: BC.narrow(n, n),
      D,
      z,
      deltaBias: db,
      deltaSoftplus: true,
      h0,
      ...g,
      chunk: 16,
    });
    for (const t of Object.values(g)) outs.push(bk.readSync(t) as Float32Array);
    const x = up(bk, rand(bt * l * e, 19), [bt, l, e]);
    const cw = up(bk, rand(e * 4, 20), [e, 4]),
      cb = up(bk, rand(e, 21), [e]);
    const st = up(bk, rand(bt * e * 4, 22), [bt, e, 4]);
    const co = bk.alloc([bt, l, e]);
    bk.causalConv1d(co, x, cw, cb, st, true);
    outs.push(bk.readSync(co) as Float32Array, bk.readSync(st) as Float32Array);
    const cg = { dx: bk.alloc([bt, l, e]), dWeight: bk.alloc([e, 4]), dBias: bk.alloc([e]) };
    bk.causalConv1dBackward({
      ...cg,
      g: up(bk, rand(bt * l * e, 25), [bt, l, e]),
      x,
      weight: cw,
      bias: cb,
      silu: true,
    });
    for (const t of Object.values(cg)) outs.push(bk.readSync(t) as Float32Array);
  }
  return outs;
}

for (const kernels of ['wasm', 'ts'] as const) {
  test(`${kernels} kernels: 2 and 3 threads give exactly the results of one thread`, async () => {
    const want = workload(new CpuBackend({ kernels }));
    for (const threads of [2, 3]) {
      const got = workload(await make(kernels, threads));
      assert.equal(got.length, want.length);
      got.forEach((g, i) => assert.deepEqual(g, want[i], `${kernels}, ${threads} threads, output ${i}`));
    }
  });
}

test('arenas opened after the workers started are attached to them', async () => {
  // 2 MiB arenas: the second product's weight opens new arenas while the pool runs
  const bk = new CpuBackend({ kernels: 'wasm', arenas: { arenaBytes: 2 << 20, reserveBytes: 512 << 10 } });
  backends.push(bk);
  await bk.useThreads(2, { splitProductsFrom: 1 << 15 });
  const ref = new CpuBackend({ kernels: 'wasm' });
  for (const p of [64, 700]) {
    const q = 512;
    const X = rand(2 * q, 1),
      W = rand(p * q, 2);
    const o = bk.alloc([2, p]),
      o2 = ref.alloc([2, p]);
    bk.matmul(o, bk.upload(X, [2, q]), bk.upload(W, [p, q]), { transB: true });
    ref.matmul(o2, ref.upload(X, [2, q]), ref.upload(W, [p, q]), { transB: true });
    assert.deepEqual(bk.readSync(o), ref.readSync(o2), `p ${p}`);
  }
  assert.ok(bk.arenas!.arenas.length > 1, 'several arenas were opened');
});

test('products below splitProductsFrom run on the calling thread alone, from it on the pool: same results', async () => {
  const bk = new CpuBackend({ kernels: 'wasm' });
  backends.push(bk);
  await bk.useThreads(2); // the default bound, MIN_SPLIT_PRODUCT
  const ref = new CpuBackend({ kernels: 'wasm' });
  const commands: number[] = [];
  const run = ThreadPool.prototype.run;
  ThreadPool.prototype.run = function (
    this: ThreadPool,
    op: number,
    total: number,
    align?: number,
    max?: number,
  ): void {
    commands.push(op);
    run.call(this, op, total, align, max);
  };
  try {
    // a batch-1 LM head of the shipped model (128 x 2048: below the bound), and 4 rows of it (above)
    for (const [m, split] of [
      [1, false],
      [4, true],
    ] as const) {
      const q = 128,
        p = 2048;
      assert.equal(m * q * p >= MIN_SPLIT_PRODUCT, split);
      const X = rand(m * q, 3),
        W = rand(p * q, 4);
      const o = bk.alloc([m, p]),
        o2 = ref.alloc([m, p]);
      commands.length = 0;
      bk.matmul(o, bk.upload(X, [m, q]), bk.upload(W, [p, q]), { transB: true });
      assert.equal(commands.length > 0, split, `m ${m}: ${commands.length} pool commands`);
      ref.matmul(o2, ref.upload(X, [m, q]), ref.upload(W, [p, q]), { transB: true });
      assert.deepEqual(bk.readSync(o), ref.readSync(o2), `m ${m}`);
    }
  } finally {
    ThreadPool.prototype.run = run;
  }
});

test('useThreads refuses bad counts; 1 stops the workers', async () => {
  const bk = new CpuBackend({ kernels: 'wasm' });
  backends.push(bk);
  await assert.rejects(bk.useThreads(0), (e: Error) => /positive integer/.test(e.message));
  await assert.rejects(bk.useThreads(1.5), (e: Error) => /positive integer/.test(e.message));
  await bk.useThreads(2);
  assert.equal(bk.threads, 2);
  await bk.useThreads(1);
  assert.equal(bk.threads, 1);
  const o = bk.alloc([1, 4]);
  bk.matmul(o, bk.upload(rand(8, 1), [1, 8]), bk.upload(rand(32, 2), [4, 8]), { transB: true });
  assert.equal(bk.readSync(o).length, 4);
});

test('plain (unshared) memories cannot take threads: a clear UNSUPPORTED', async () => {
  const bk = new CpuBackend({ kernels: 'wasm', arenas: { shared: false } });
  await assert.rejects(
    bk.useThreads(2),
    (e: Error & { code?: string }) => e.code === 'UNSUPPORTED' && /cross-origin isolated/.test(e.message),
  );
});

test('late waits: a few short stalls a second do not stop the workers; a fifth of a second of waiting does', () => {
  const w = new LateWaits();
  // a virtual machine's stalls: 5 waits of 5 ms a second, for 10 seconds
  for (let s = 0; s < 10; s++) for (let i = 0; i < 5; i++) assert.equal(w.add(s * 1000 + i * 200, 5), false);
  // an overloaded machine: a 30 ms wait every 40 ms; the seventh within the window crosses 200 ms
  const t0 = 20000;
  const falls: number[] = [];
  for (let i = 0; i < 14; i++) if (w.add(t0 + i * 40, 30)) falls.push(i);
  assert.deepEqual(falls, [6, 13]);
});
