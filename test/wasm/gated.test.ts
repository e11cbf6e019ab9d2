import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { maxAbsDiff } from '../helpers/fixtures.js';
import { rand } from '../helpers/random.js';
import { ts, wa, wasmOnThreads } from '../helpers/wasm-backends.js';

/**
 * The hybrids' gating kernels in WebAssembly (gated.wat: unary 'silu', Mamba-2's gated RMSNorm) against
 * the TypeScript reference on odd sizes: widths and groups that are not multiples of the vector width,
 * single rows, views (ld > cols), in place, both norm orders, with and without the gate; and the pool
 * (rows split over threads) giving exactly the one-thread result.
 */

/** Columns [c0, c0 + n) of a (rows, width) tensor of seeded values on `bk`. */
function viewOn(bk: CpuBackend, rows: number, width: number, c0: number, n: number, seed: number, scale = 4): Tensor {
  return bk.upload(rand(rows * width, seed, scale), [rows, width]).narrow(c0, n);
}

function close(got: Float32Array | Int32Array, want: Float32Array | Int32Array, tol: number, what: string): void {
  const err = maxAbsDiff(got, want);
  assert.ok(err <= tol, `${what}: max abs error ${err} > ${tol}`);
}

const SILU_SHAPES: [number, number][] = [
  [1, 1],
  [1, 3],
  [1, 4],
  [2, 7],
  [5, 13],
  [3, 64],
  [17, 129],
  [64, 1024], // over the pool's threshold
];

function siluOn(bk: CpuBackend, rows: number, cols: number, seed: number, inPlace: boolean): Float32Array {
  const x = viewOn(bk, rows, cols + 5, 2, cols, seed, 30); // large |x|: exp's clamp and the tails
  const out = inPlace ? x : bk.alloc([rows, cols]);
  bk.unary('silu', out, x);
  return bk.readSync(out) as Float32Array;
}

test('silu: odd widths, views, in place, large arguments', () => {
  for (const [rows, cols] of SILU_SHAPES)
    for (const inPlace of [false, true]) {
      const want = siluOn(ts, rows, cols, 11, inPlace),
        got = siluOn(wa, rows, cols, 11, inPlace);
      // |silu(x)| <= |x| <= 30 and exp's relative error is below 2e-7
      close(got, want, 30 * 4e-7, `${rows}x${cols}${inPlace ? ' in place' : ''}`);
    }
});

interface NormCase {
  m: number;
  e: number;
  group: number;
  gate: boolean;
  normBeforeGate: boolean;
  inPlace: boolean;
}

const NORM_CASES: NormCase[] = [];
for (const [m, e, group] of [
  [1, 1, 1],
  [1, 7, 7],
  [2, 12, 4],
  [3, 15, 5],
  [4, 26, 13],
  [1, 3072, 3072],
  [40, 384, 128], // over the pool's threshold
] as const)
  for (const gate of [true, false])
    for (const normBeforeGate of [false, true])
      for (const inPlace of [false, true]) NORM_CASES.push({ m, e, group, gate, normBeforeGate, inPlace });

function normOn(bk: CpuBackend, c: NormCase, seed: number): Float32Array {
  const x = viewOn(bk, c.m, c.e + 3, 1, c.e, seed);
  const z = c.gate ? viewOn(bk, c.m, c.e + 6, 5, c.e, seed + 1) : null;
  const w = bk.upload(rand(c.e, seed + 2, 2), [c.e]);
  const out = c.inPlace ? x : bk.alloc([c.m, c.e]);
  bk.gatedRmsnorm(out, x, z, w, { groupSize: c.group, eps: 1e-5, normBeforeGate: c.normBeforeGate });
  return bk.readSync(out) as Float32Array;
}

const caseName = (c: NormCase): string =>
  `m${c.m} e${c.e} group ${c.group}${c.gate ? '' : ' no gate'}${c.normBeforeGate ? ' norm first' : ''}${c.inPlace ? ' in place' : ''}`;

test('gated RMSNorm: odd widths and groups, views, in place, both orders, with and without the gate', () => {
  NORM_CASES.forEach((c, i) => {
    const want = normOn(ts, c, 100 + i),
      got = normOn(wa, c, 100 + i);
    // outputs are O(|w| |x| |silu(z)|) <= ~2 * 4 * 4 here; f32 sums against the reference's f64
    close(got, want, 2e-5 * Math.max(1, ...want.map(Math.abs)), caseName(c));
  });
});

test('silu and gated RMSNorm: 2 and 3 threads give exactly the results of one thread', async () => {
  const oneSilu = SILU_SHAPES.map(([r, c], i) => siluOn(wa, r, c, 20 + i, false));
  const oneNorm = NORM_CASES.map((c, i) => normOn(wa, c, 200 + i));
  for (const threads of [2, 3]) {
    const bk = await wasmOnThreads(threads);
    SILU_SHAPES.forEach(([r, c], i) =>
      assert.deepEqual(siluOn(bk, r, c, 20 + i, false), oneSilu[i], `silu ${r}x${c}, ${threads} threads`),
    );
    NORM_CASES.forEach((c, i) =>
      assert.deepEqual(normOn(bk, c, 200 + i), oneNorm[i], `${caseName(c)}, ${threads} threads`),
    );
  }
});
