import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { UnaryOp, BinaryOp } from '../../src/backend/contract/inference.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { isMambaError } from '../../src/errors.js';
import { assertClose, randomArray } from '../helpers/compare.js';
import { disposeGpu, openAdapter, requireAdapter } from '../helpers/webgpu.js';
import { both, rand, upload, type Pair } from './pair.js';

after(disposeGpu);
const C = cpu();

test('copy and fill: f32, i32 and 16-bit, views with offsets and strides', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const dtype of ['f32', 'f16', 'bf16'] as const) {
    const src = rand(g, [5, 7], 1, { dtype, pad: 3 });
    // f32 destination (converts)
    const dst = rand(g, [5, 7], 2, { pad: 2 });
    C.copy(dst.c, src.c);
    g.copy(dst.g, src.g);
    const [a, b] = await both(dst);
    assert.deepEqual(a, b, `copy ${dtype} -> f32`);
    // whole padded storage untouched outside the view
    assertClose(await g.read(dst.g.base!), await C.read(dst.c.base!), `copy ${dtype}: around the view`, 0, 0);
    if (dtype !== 'f32') {
      const d16 = rand(g, [5, 7], 3, { dtype, pad: 1 });
      C.copy(d16.c, src.c);
      g.copy(d16.g, src.g);
      assert.deepEqual(await g.read(d16.g.base!), await C.read(d16.c.base!), `copy ${dtype} -> ${dtype} (odd offsets)`);
      C.fill(d16.c, 0.3);
      g.fill(d16.g, 0.3);
      assert.deepEqual(await g.read(d16.g.base!), await C.read(d16.c.base!), `fill ${dtype}`);
    }
  }
  const ids = upload(g, Int32Array.from([5, -3, 7, 9, 11, 13]), [2, 3]);
  const idd = upload(g, new Int32Array(6), [2, 3]);
  C.copy(idd.c, ids.c);
  g.copy(idd.g, ids.g);
  assert.deepEqual(await g.read(idd.g), await C.read(idd.c));
  C.fill(idd.c, -7);
  g.fill(idd.g, -7);
  assert.deepEqual(await g.read(idd.g), await C.read(idd.c));
  const f = rand(g, [3, 9], 4, { pad: 2 });
  C.fill(f.c, 2.5);
  g.fill(f.g, 2.5);
  assert.deepEqual(await g.read(f.g.base!), await C.read(f.c.base!));
});

test('matmul: every transposition, bias, accumulate, views, f16/bf16 operands, odd sizes', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 10;
  for (const m of [1, 3, 17, 70]) {
    for (const [q, p] of [
      [5, 7],
      [33, 65],
      [130, 7],
    ] as const) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          for (const bdt of ['f32', 'f16', 'bf16'] as const) {
            if (bdt !== 'f32' && (m === 70 || (m === 1 && q !== 33) || transA !== transB)) continue; // keep the run short: 16-bit operands on a subset
            const pad = seed % 3 === 0 ? 3 : 0;
            const a = transA ? rand(g, [q, m], seed++) : rand(g, [m, q], seed++, { pad });
            const b = transB
              ? rand(g, [p, q], seed++, { dtype: bdt, pad: bdt === 'f32' ? pad : 0 })
              : rand(g, [q, p], seed++, { dtype: bdt });
            const bias = seed % 2 ? rand(g, [p], seed++) : null;
            const accumulate = seed % 5 === 0;
            const out = rand(g, [m, p], seed++, { pad });
            const o = { transA, transB, bias: bias?.c ?? null, accumulate };
            C.matmul(out.c, a.c, b.c, o);
            g.matmul(out.g, a.g, b.g, { ...o, bias: bias?.g ?? null });
            const [x, y] = await both(out);
            assertClose(
              x,
              y,
              `matmul m=${m} q=${q} p=${p} transA=${transA} transB=${transB} b:${bdt} bias=${!!bias} acc=${accumulate} pad=${pad}`,
              1e-4,
              1e-5,
            );
          }
        }
      }
    }
  }
});

for (const [matmulTile, matmulRegisters] of [
  [128, true],
  [128, false],
  [64, true],
  [64, false],
] as const)
  test(`matmul with ${matmulTile} x ${matmulTile} tiles (${matmulTile / 16} x ${matmulTile / 16} per thread, ${matmulRegisters ? 'named registers, prefetched slices' : 'loop form'}): transpositions, 16-bit operands, edges`, async (t) => {
    const g = await openAdapter(t, { matmulTile, matmulRegisters });
    if (!g) return;
    try {
      let seed = 500;
      for (const [m, q, p] of [
        [130, 9, 129],
        [9, 40, 200],
        [256, 24, 128],
        [131, 77, 257],
        [65, 17, 63], // one row and one k past a 64 tile and a 16 slice, one column short
      ] as const) {
        for (const [transA, transB, bdt] of [
          [false, true, 'f32'],
          [false, false, 'bf16'],
          [true, true, 'f16'],
          [true, false, 'f32'],
        ] as const) {
          const a = transA ? rand(g, [q, m], seed++) : rand(g, [m, q], seed++, { pad: 1 });
          const b = transB ? rand(g, [p, q], seed++, { dtype: bdt }) : rand(g, [q, p], seed++, { dtype: bdt });
          const bias = rand(g, [p], seed++);
          const out = rand(g, [m, p], seed++);
          const o = { transA, transB, accumulate: transA };
          C.matmul(out.c, a.c, b.c, { ...o, bias: bias.c });
          g.matmul(out.g, a.g, b.g, { ...o, bias: bias.g });
          const [x, y] = await both(out);
          const what = `matmul ${matmulTile}-tile (registers ${matmulRegisters}) m=${m} q=${q} p=${p} transA=${transA} transB=${transB} ${bdt}`;
          assertClose(x, y, what, 1e-4, 1e-5);
        }
      }
    } finally {
      g.dispose();
    }
  });

test('matmul: the 16-byte decode path (aligned rows) matches, f32 and 16-bit weights, batch 1-8', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 100;
  for (const m of [1, 2, 4, 5, 8]) {
    for (const dt of ['f32', 'f16', 'bf16'] as const) {
      const q = 96,
        p = 37;
      const a = rand(g, [m, q], seed++);
      const w = rand(g, [p, q], seed++, { dtype: dt });
      const bias = rand(g, [p], seed++, { dtype: dt });
      const out = rand(g, [m, p], seed++);
      C.matmul(out.c, a.c, w.c, { transB: true, bias: bias.c, accumulate: m === 2 });
      g.matmul(out.g, a.g, w.g, { transB: true, bias: bias.g, accumulate: m === 2 });
      const [x, y] = await both(out);
      assertClose(x, y, `matvec m=${m} ${dt}`, 1e-4, 1e-5);
    }
  }
});

test('embedding: f32, f16 and bf16 tables, a view as output', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const dtype of ['f32', 'f16', 'bf16'] as const) {
    const table = rand(g, [11, 9], 20, { dtype });
    const ids = upload(g, Int32Array.from([3, 0, 10, 3, 7]), [5]);
    const out = rand(g, [5, 9], 21, { pad: 2 });
    C.embedding(out.c, ids.c, table.c);
    g.embedding(out.g, ids.g, table.g);
    const [x, y] = await both(out);
    assert.deepEqual(x, y, `embedding ${dtype}`);
  }
});

test('addRmsnorm: with and without x, 16-bit weight, views', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [m, d] of [
    [1, 7],
    [5, 300],
    [3, 1000],
  ] as const) {
    for (const withX of [false, true]) {
      for (const wdt of ['f32', 'bf16'] as const) {
        const res = rand(g, [m, d], 30 + d, { pad: 1 });
        const x = withX ? rand(g, [m, d], 31 + d, { pad: 2 }) : null;
        const w = rand(g, [d], 32 + d, { dtype: wdt });
        const out = rand(g, [m, d], 33 + d);
        C.addRmsnorm(out.c, res.c, x?.c ?? null, w.c, 1e-5);
        g.addRmsnorm(out.g, res.g, x?.g ?? null, w.g, 1e-5);
        const [o1, o2] = await both(out);
        assertClose(o1, o2, `rmsnorm out m=${m} d=${d} x=${withX} ${wdt}`, 1e-5, 1e-6);
        const [r1, r2] = await both(res);
        assertClose(r1, r2, `rmsnorm residual m=${m} d=${d}`, 1e-6, 1e-7);
      }
    }
  }
});

test('causalConv1d: with and without state and bias, l = 1 step, long l, k = 1 to 8', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 40;
  for (const [b, l, e, k] of [
    [1, 1, 13, 4],
    [2, 1, 5, 4],
    [2, 3, 9, 4],
    [2, 13, 37, 4],
    [3, 40, 6, 3],
    [1, 300, 70, 4],
    // the one-thread-per-channel form (l <= 8): the widest window, the narrowest, l < k
    [2, 3, 5, 8],
    [1, 1, 7, 8],
    [1, 8, 7, 1],
    [2, 5, 9, 2],
  ] as const) {
    for (const withState of [false, true]) {
      for (const withBias of [false, true]) {
        const silu = seed % 2 === 0;
        const x = rand(g, [b, l, e], seed++, { pad: 2 });
        const w = rand(g, [e, k], seed++);
        const bias = withBias ? rand(g, [e], seed++) : null;
        const state = withState ? rand(g, [b, e, k], seed++) : null;
        const out = rand(g, [b, l, e], seed++);
        C.causalConv1d(out.c, x.c, w.c, bias?.c ?? null, state?.c ?? null, silu);
        g.causalConv1d(out.g, x.g, w.g, bias?.g ?? null, state?.g ?? null, silu);
        const [o1, o2] = await both(out);
        const what = `conv b=${b} l=${l} e=${e} k=${k} state=${withState} bias=${withBias} silu=${silu}`;
        assertClose(o1, o2, what, 1e-5, 1e-6);
        if (state) {
          const [s1, s2] = await both(state);
          assertClose(s1, s2, `${what}: state`, 0, 0);
        }
      }
    }
  }
});

test('unary and binary: every op, in place, row broadcast; argmax with ties', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const ops: UnaryOp[] = [
    'silu',
    'softplus',
    'exp',
    'neg',
    'negexp',
    'relu',
    'gelu',
    'sigmoid',
    'tanh',
    'square',
    'sqrt',
    'log',
  ];
  for (const op of ops) {
    const positive = op === 'sqrt' || op === 'log';
    const x = rand(g, [7, 33], 50, { lo: positive ? 0.01 : -30, hi: positive ? 5 : 30, pad: 1 });
    const out = rand(g, [7, 33], 51);
    C.unary(op, out.c, x.c);
    g.unary(op, out.g, x.g);
    const [a, b] = await both(out);
    assertClose(a, b, `unary ${op}`, 2e-6, 1e-6);
    C.unary(op, x.c, x.c);
    g.unary(op, x.g, x.g); // in place
    const [c, d] = await both(x);
    assertClose(c, d, `unary ${op} in place`, 2e-6, 1e-6);
  }
  const bops: BinaryOp[] = ['add', 'sub', 'mul', 'div'];
  for (const op of bops) {
    for (const mode of ['full', 'broadcast', 'inplace-a', 'inplace-b'] as const) {
      const a = rand(g, [6, 17], 60, { pad: 1 });
      const b: Pair =
        mode === 'broadcast' ? rand(g, [17], 61, { lo: 0.5, hi: 2 }) : rand(g, [6, 17], 62, { lo: 0.5, hi: 2 });
      const out = mode === 'inplace-a' ? a : mode === 'inplace-b' ? b : rand(g, [6, 17], 63);
      C.binary(op, out.c, a.c, b.c);
      g.binary(op, out.g, a.g, b.g);
      const [x, y] = await both(out);
      assertClose(x, y, `binary ${op} ${mode}`, 1e-6, 0);
    }
  }
  const xs = randomArray(3 * 1001, 70);
  xs[5] = 9;
  xs[700] = 9; // tie in row 0: first index wins
  xs[1001 + 1000] = 5;
  const x = upload(g, xs, [3, 1001]);
  const out = upload(g, new Int32Array(3), [3]);
  C.argmax(out.c, x.c);
  g.argmax(out.g, x.g);
  assert.deepEqual(await g.read(out.g), await C.read(out.c));
});

test('an input that shares a buffer with the output (other columns) is read as it was before the kernel', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const wide = rand(g, [3, 10], 80);
  const x = { c: wide.c.narrow(5, 5), g: wide.g.narrow(5, 5) };
  const out = { c: wide.c.narrow(0, 5), g: wide.g.narrow(0, 5) };
  C.unary('exp', out.c, x.c);
  g.unary('exp', out.g, x.g);
  const w = rand(g, [4, 5], 81);
  const o2 = { c: wide.c.narrow(1, 4), g: wide.g.narrow(1, 4) };
  C.matmul(o2.c, wide.c.narrow(5, 5), w.c, { transB: true });
  g.matmul(o2.g, wide.g.narrow(5, 5), w.g, { transB: true });
  assertClose(await g.read(wide.g), await C.read(wide.c), 'shared-buffer input', 1e-5, 1e-6);
});

test('errors: shapes are checked before dispatch; a tensor of another backend is refused', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const a = g.alloc([3, 4]);
  const b = g.alloc([5, 4]);
  assert.throws(
    () => g.matmul(g.alloc([3, 6]), a, b, { transB: true }),
    (e) => isMambaError(e, 'SHAPE_MISMATCH'),
  );
  assert.throws(
    () => g.matmul(g.alloc([3, 5]), a, C.alloc([5, 4]), { transB: true }),
    (e) => isMambaError(e, 'BACKEND_MISMATCH'),
  );
  const big = g.g.limits.maxStorageBufferBindingSize;
  assert.throws(
    () => g.alloc([Math.ceil(big / 4) + 16]),
    (e) => isMambaError(e, 'DEVICE') && /maxStorageBufferBindingSize/.test((e as Error).message),
  );
});

test('device errors: a disposed backend refuses work with a DEVICE error that says so', async (t) => {
  const g = await openAdapter(t, {});
  if (!g) return;
  const x = g.upload(new Float32Array([1, 2, 3]), [3]);
  assert.deepEqual(Array.from(await g.read(x)), [1, 2, 3]);
  g.dispose();
  assert.throws(
    () => g.alloc([4]),
    (e) => isMambaError(e, 'DEVICE') && /disposed/.test((e as Error).message),
  );
  await assert.rejects(g.read(x), (e) => isMambaError(e, 'DEVICE'));
  assert.throws(
    () => g.unary('exp', x, x),
    (e) => isMambaError(e, 'DEVICE'),
  );
});
