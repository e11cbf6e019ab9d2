import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SsdScanArgs } from '../../src/backend/contract/inference.js';
import type { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { SSD_MAX_CHUNK } from '../../src/backend/cpu/wasm/launch.js';
import { maxAbsDiff } from '../helpers/fixtures.js';
import { rand } from '../helpers/random.js';
import { ts, wa, wasmOnThreads } from '../helpers/wasm-backends.js';

/**
 * Mamba-2's SSD scan in WebAssembly (ssd.wat: the chunked form for l > 1, the recurrent step for
 * l = 1) against the TypeScript reference (reference/ssd-scan.ts, f64 sums) on odd sizes: heads,
 * head_dim, d_state, groups, chunks and lengths that are not multiples of the vector width (4) or of
 * the chunk; batch > 1; with and without an initial state, the final state returned or not, in
 * place (h0 = hOut, as the step runs); x, B, C as column windows of one packed tensor. Then the
 * same on 2 and 3 threads, bit for bit equal to one thread. ssd-simd128.test.ts reruns this file on
 * the plain SIMD128 build.
 */

interface Sizes {
  b: number;
  l: number;
  h: number;
  p: number;
  g: number;
  n: number;
}

interface Variant {
  chunkSize: number;
  h0: 'none' | 'given' | 'inplace';
  hOut: boolean;
  D: boolean;
  dtBias: boolean;
  dtSoftplus: boolean;
  dtLimit: readonly [number, number];
}

/** Uploads a problem on a backend: x, B, C as windows of one (b, l, 2 + e + 2gn) tensor, dt of a (b, l, h + 1). */
function upload(bk: CpuBackend, z: Sizes, v: Variant, seed: number): SsdScanArgs {
  const { b, l, h, p, g, n } = z;
  const e = h * p,
    gn = g * n,
    W = 2 + e + 2 * gn;
  const packed = bk.upload(rand(b * l * W, seed), [b, l, W]);
  const dt = bk.upload(rand(b * l * (h + 1), seed + 1, 2), [b, l, h + 1]);
  const A = Float32Array.from(rand(h, seed + 2), (x) => -Math.exp(x * 3)); // -exp(A_log), A_log in (-1.5, 1.5)
  const h0 = v.h0 === 'none' ? null : bk.upload(rand(b * h * p * n, seed + 3), [b, h, p, n]);
  return {
    y: bk.alloc([b, l, e]),
    x: packed.narrow(2, e),
    dt: dt.narrow(1, h),
    A: bk.upload(A, [h]),
    B: packed.narrow(2 + e, gn),
    C: packed.narrow(2 + e + gn, gn),
    D: v.D ? bk.upload(rand(h, seed + 4), [h]) : null,
    dtBias: v.dtBias ? bk.upload(rand(h, seed + 5), [h]) : null,
    dtSoftplus: v.dtSoftplus,
    dtLimit: v.dtLimit,
    nGroups: g,
    chunkSize: v.chunkSize,
    h0,
    hOut: v.h0 === 'inplace' ? h0 : v.hOut ? bk.alloc([b, h, p, n]) : null,
  };
}

/** y and the final state (if returned) of one run. */
function run(bk: CpuBackend, z: Sizes, v: Variant, seed: number): Float32Array[] {
  const a = upload(bk, z, v, seed);
  bk.ssdScan(a);
  const out = [bk.readSync(a.y) as Float32Array];
  if (a.hOut) out.push(bk.readSync(a.hOut) as Float32Array);
  return out;
}

const maxAbs = (a: Float32Array): number => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

const base: Variant = {
  chunkSize: 4,
  h0: 'given',
  hOut: true,
  D: true,
  dtBias: true,
  dtSoftplus: true,
  dtLimit: [0, Infinity],
};
/** Each departs from `base` in one or two ways. */
const VARIANTS: Partial<Variant>[] = [
  {},
  { h0: 'none' },
  { h0: 'inplace' },
  { h0: 'none', hOut: false, D: false },
  { dtBias: false, dtLimit: [0.05, 0.4] },
  { dtSoftplus: false, dtLimit: [0.001, 0.5] },
];

// b, l, h, p, g, n; chunks
const CASES: [Sizes, number[]][] = [
  [{ b: 1, l: 1, h: 1, p: 1, g: 1, n: 1 }, [1]],
  [{ b: 2, l: 1, h: 6, p: 5, g: 3, n: 7 }, [4]],
  [{ b: 3, l: 1, h: 4, p: 8, g: 2, n: 16 }, [1]],
  [{ b: 1, l: 2, h: 1, p: 3, g: 1, n: 5 }, [1, 64]],
  [{ b: 2, l: 13, h: 6, p: 5, g: 3, n: 7 }, [1, 3, 4, 5, 13, 256]],
  [{ b: 3, l: 9, h: 4, p: 3, g: 1, n: 8 }, [2, 5, 8]],
  [{ b: 1, l: 17, h: 8, p: 2, g: 4, n: 3 }, [3, 7]],
  [{ b: 2, l: 70, h: 3, p: 9, g: 1, n: 13 }, [6, 64, 70]],
  [{ b: 1, l: 150, h: 2, p: 16, g: 2, n: 32 }, [33, 256]],
];

test('ssd scan: WebAssembly equals the TypeScript reference on odd sizes, chunks, states and options', () => {
  let worst = 0;
  for (const [z, chunks] of CASES) {
    for (const chunkSize of chunks) {
      VARIANTS.forEach((d, i) => {
        const v = { ...base, chunkSize, ...d };
        const seed = 1000 + 17 * z.l + 7 * chunkSize + i;
        const want = run(ts, z, v, seed),
          got = run(wa, z, v, seed);
        assert.equal(got.length, want.length);
        const what = `${JSON.stringify(z)} chunk ${chunkSize} variant ${JSON.stringify(d)}`;
        for (let k = 0; k < want.length; k++) {
          // f32 sums of up to Q + n terms against f64 ones, relative to the largest output
          const tol = 2e-6 * Math.sqrt(Math.min(chunkSize, SSD_MAX_CHUNK, z.l) + z.n + z.l) * (1 + maxAbs(want[k]));
          const err = maxAbsDiff(got[k], want[k]);
          worst = Math.max(worst, err / (1 + maxAbs(want[k])));
          assert.ok(err <= tol, `${what}: ${k === 0 ? 'y' : 'state'} max abs error ${err} > ${tol}`);
        }
      });
    }
  }
  console.log(`worst error relative to the largest output: ${worst.toExponential(2)}`);
});

test('ssd scan: chunks longer than the WebAssembly chunk give the reference within rounding', () => {
  const z = { b: 1, l: 2 * SSD_MAX_CHUNK + 9, h: 2, p: 7, g: 1, n: 6 };
  const v = { ...base, chunkSize: 4 * SSD_MAX_CHUNK };
  const want = run(ts, z, v, 5),
    got = run(wa, z, v, 5);
  for (let k = 0; k < 2; k++) assert.ok(maxAbsDiff(got[k], want[k]) <= 1e-4 * (1 + maxAbs(want[k])));
});

test('ssd scan: 2 and 3 threads give exactly the results of one thread (prefill and step)', async () => {
  const work: [Sizes, Partial<Variant>][] = [
    [{ b: 2, l: 40, h: 6, p: 8, g: 2, n: 16 }, { chunkSize: 7 }],
    [
      { b: 1, l: 33, h: 5, p: 6, g: 5, n: 9 },
      { chunkSize: 64, h0: 'none' },
    ],
    [{ b: 3, l: 1, h: 8, p: 16, g: 2, n: 32 }, { h0: 'inplace' }],
    [{ b: 2, l: 1, h: 7, p: 9, g: 1, n: 130 }, {}],
  ];
  const one = work.map(([z, d], i) => run(wa, z, { ...base, ...d }, 50 + i));
  for (const threads of [2, 3]) {
    const bk = await wasmOnThreads(threads);
    work.forEach(([z, d], i) => {
      const got = run(bk, z, { ...base, ...d }, 50 + i);
      got.forEach((g, k) => assert.deepEqual(g, one[i][k], `${threads} threads, case ${i}, output ${k}`));
    });
  }
});

test('ssd scan: l = 0 leaves the final state untouched, as the reference does', () => {
  const z = { b: 3, l: 0, h: 4, p: 5, g: 2, n: 6 };
  for (const bk of [ts, wa]) {
    const a = upload(bk, z, { ...base, h0: 'none' }, 3);
    bk.fill(a.hOut!, 7);
    bk.ssdScan(a);
    assert.ok(
      (bk.readSync(a.hOut!) as Float32Array).every((x) => x === 7),
      bk.kernels,
    );
  }
});
