import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { UnaryOp } from '../../src/backend/contract/inference.js';
import { missingTrainingKernels } from '../../src/backend/contract/training.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { assertClose } from '../helpers/compare.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { both, rand, upload, type Pair } from './pair.js';
import { scanBackwardCase } from './scan-backward-case.js';

// The training kernels of the WebGPU backend against the CPU reference (f64 accumulation there, f32
// here), on odd sizes and strided views. Tolerance: 1e-5 relative (plus 1e-6 absolute near zero).

after(disposeGpu);
const C = cpu();
const RTOL = 1e-5,
  ATOL = 1e-6;

/** Compares both sides of `p`, reports the largest relative error as a diagnostic. */
async function check(t: TestContext, p: Pair, what: string, rtol = RTOL, atol = ATOL): Promise<void> {
  const [g, c] = await both(p);
  let worst = 0;
  for (let i = 0; i < c.length; i++) worst = Math.max(worst, Math.abs(g[i] - c[i]) / Math.max(Math.abs(c[i]), 1e-3));
  t.diagnostic(`${what}: max relative error ${worst.toExponential(2)}`);
  assertClose(g, c, what, rtol, atol);
}

function ids(n: number, V: number, seed: number, ignore = false): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = ignore && i % 5 === 2 ? -100 : (i * 7 + seed * 13) % V;
  return a;
}

test('webgpu has every training kernel', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  assert.deepEqual(missingTrainingKernels(g), []);
});

test('unaryBackward: every op, strided views', async (t) => {
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
  let seed = 1;
  for (const op of ops) {
    const positive = op === 'sqrt' || op === 'log';
    const x = rand(g, [7, 13], seed++, { pad: 2, lo: positive ? 0.2 : -3, hi: 3 });
    const y = rand(g, [7, 13], seed++);
    C.unary(op, y.c, x.c);
    g.unary(op, y.g, x.g);
    const gr = rand(g, [7, 13], seed++, { pad: 1 });
    const dx = rand(g, [7, 13], seed++, { pad: 3 });
    C.unaryBackward(op, dx.c, gr.c, x.c, y.c);
    g.unaryBackward(op, dx.g, gr.g, x.g, y.g);
    await check(t, dx, `unaryBackward(${op})`);
  }
});

test('reduceRows: sum and sumSquares, accumulate, narrow and wide x', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 100;
  for (const [m, p] of [
    [1, 1],
    [37, 1],
    [5, 3],
    [131, 17],
    [9, 200],
    [1000, 1],
  ] as const) {
    for (const op of ['sum', 'sumSquares'] as const) {
      for (const accumulate of [false, true]) {
        const x = rand(g, [m, p], seed++, { pad: seed % 2 });
        const out = rand(g, [p], seed++);
        C.reduceRows(op, out.c, x.c, accumulate);
        g.reduceRows(op, out.g, x.g, accumulate);
        await check(t, out, `reduceRows ${op} m=${m} p=${p} acc=${accumulate}`);
      }
    }
  }
});

test('rmsnormBackward: dx and dWeight, odd widths, strided views', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 200;
  for (const [m, d] of [
    [1, 5],
    [7, 33],
    [13, 300],
    [70, 9],
  ] as const) {
    const x = rand(g, [m, d], seed++, { pad: 1, lo: -2, hi: 2 });
    const w = rand(g, [d], seed++, { lo: 0.5, hi: 1.5 });
    const gr = rand(g, [m, d], seed++);
    const dx = rand(g, [m, d], seed++, { pad: 2 });
    const dw = rand(g, [d], seed++);
    C.rmsnormBackward(dx.c, dw.c, gr.c, x.c, w.c, 1e-5);
    g.rmsnormBackward(dx.g, dw.g, gr.g, x.g, w.g, 1e-5);
    await check(t, dx, `rmsnormBackward dx m=${m} d=${d}`);
    await check(t, dw, `rmsnormBackward dWeight m=${m} d=${d}`);
  }
});

test('embeddingBackward: repeated ids add up, table not cleared', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [m, V, d] of [
    [1, 3, 5],
    [23, 7, 70],
    [50, 11, 3],
  ] as const) {
    const id = upload(g, ids(m, V, d), [m]);
    const gr = rand(g, [m, d], m + d, { pad: 1 });
    const table = rand(g, [V, d], V + d);
    C.embeddingBackward(table.c, id.c, gr.c);
    g.embeddingBackward(table.g, id.g, gr.g);
    const [a, b] = await both(table);
    assert.deepEqual(a, b, `embeddingBackward m=${m} V=${V} d=${d} (same order of additions: bit for bit)`);
  }
});

test('crossEntropy and its backward: mean and sum, ignored targets, wide rows', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 300;
  for (const [m, V] of [
    [1, 5],
    [9, 37],
    [17, 1001],
    [300, 3],
  ] as const) {
    for (const reduction of ['mean', 'sum'] as const) {
      for (const ignore of [false, true]) {
        const logits = rand(g, [m, V], seed++, { pad: 1, lo: -4, hi: 4 });
        const tg = upload(g, ids(m, V, seed, ignore), [m]);
        const out = rand(g, [1], seed++);
        C.crossEntropy(out.c, logits.c, tg.c, reduction);
        g.crossEntropy(out.g, logits.g, tg.g, reduction);
        await check(t, out, `crossEntropy m=${m} V=${V} ${reduction} ignore=${ignore}`);
        const gin = upload(g, Float32Array.of(0.7), [1]);
        const dl = rand(g, [m, V], seed++, { pad: 2 });
        C.crossEntropyBackward(dl.c, logits.c, tg.c, gin.c, reduction);
        g.crossEntropyBackward(dl.g, logits.g, tg.g, gin.g, reduction);
        await check(t, dl, `crossEntropyBackward m=${m} V=${V} ${reduction} ignore=${ignore}`);
      }
    }
  }
  // every target ignored: mean is 0, gradient 0
  const logits = rand(g, [3, 4], 9);
  const tg = upload(g, Int32Array.of(-1, -1, -100), [3]);
  const out = rand(g, [1], 10);
  g.crossEntropy(out.g, logits.g, tg.g, 'mean');
  assert.deepEqual(Array.from(await out.g.read()), [0]);
  // a target past the logits: NaN (no read back to throw from)
  const bad = upload(g, Int32Array.of(0, 4, 1), [3]);
  g.crossEntropy(out.g, logits.g, bad.g, 'sum');
  assert.ok(Number.isNaN((await out.g.read())[0]));
});

test('adamwStep: in place over several steps, decay and gradient scale, strided views', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [rows, cols] of [
    [1, 1],
    [7, 13],
    [33, 65],
  ] as const) {
    const p = rand(g, [rows, cols], rows + cols, { pad: 1 });
    const m = rand(g, [rows, cols], rows + cols + 1, { lo: -0.01, hi: 0.01 });
    const v = rand(g, [rows, cols], rows + cols + 2, { lo: 0, hi: 0.01 });
    for (let step = 1; step <= 3; step++) {
      const gr = rand(g, [rows, cols], step * 10 + rows, { pad: 2 });
      const o = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step, gradScale: 0.6 };
      C.adamwStep(p.c, gr.c, m.c, v.c, o);
      g.adamwStep(p.g, gr.g, m.g, v.g, o);
    }
    await check(t, p, `adamwStep param (${rows}, ${cols})`);
    await check(t, m, `adamwStep m (${rows}, ${cols})`);
    await check(t, v, `adamwStep v (${rows}, ${cols})`);
  }
});

test('causalConv1dBackward: with and without SiLU and bias, odd widths, strided views, rows in slices', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 400;
  // the last two run the weight gradient in row slices (2 of 65 rows; 9 of 67, the last one short)
  for (const [b, l, e, k] of [
    [1, 1, 3, 4],
    [2, 9, 5, 4],
    [3, 17, 70, 3],
    [1, 40, 7, 2],
    [1, 130, 5, 3],
    [2, 300, 70, 4],
  ] as const) {
    for (const silu of [false, true]) {
      for (const hasBias of [false, true]) {
        const x = rand(g, [b, l, e], seed++, { pad: 1 });
        const gr = rand(g, [b, l, e], seed++, { pad: 2 });
        const w = rand(g, [e, k], seed++);
        const bias = hasBias ? rand(g, [e], seed++) : null;
        const dx = rand(g, [b, l, e], seed++, { pad: 1 });
        const dw = rand(g, [e, k], seed++);
        const db = hasBias ? rand(g, [e], seed++) : null;
        const args = (s: 'c' | 'g') => ({
          dx: dx[s],
          dWeight: dw[s],
          dBias: db?.[s] ?? null,
          g: gr[s],
          x: x[s],
          weight: w[s],
          bias: bias?.[s] ?? null,
          silu,
        });
        C.causalConv1dBackward(args('c'));
        g.causalConv1dBackward(args('g'));
        const what = `causalConv1dBackward b=${b} l=${l} e=${e} k=${k} silu=${silu} bias=${hasBias}`;
        await check(t, dx, `${what} dx`);
        // dWeight and dBias are sums over b * l rows, which the GPU adds in another order (slices of
        // rows): the rounding grows with the row count (a wrong slice or index is off by O(0.1))
        const sumTol = ATOL * Math.max(1, (b * l) / 16);
        await check(t, dw, `${what} dWeight`, RTOL, sumTol);
        if (db) await check(t, db, `${what} dBias`, RTOL, sumTol);
      }
    }
  }
});

test('selectiveScanBackward: every optional input, chunked recompute, odd sizes, strided views', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 500;
  for (const [b, l, e, n, chunk, full] of [
    [1, 1, 3, 4, 64, true],
    [2, 9, 5, 16, 4, true],
    [2, 37, 70, 16, 8, true],
    [1, 20, 3, 3, 7, false],
    [3, 13, 6, 5, 64, false],
  ] as const) {
    // without softplus, dt = delta must be positive (a stable recurrence)
    const { args, grads } = scanBackwardCase(g, { b, l, e, n, chunk, full, softplus: full || n === 3 }, seed);
    seed += 30;
    C.selectiveScanBackward(args('c'));
    g.selectiveScanBackward(args('g'));
    const what = `selectiveScanBackward b=${b} l=${l} e=${e} n=${n} chunk=${chunk}`;
    for (const [name, p] of Object.entries(grads)) if (p) await check(t, p, `${what} ${name}`, 1e-5, 1e-5);
  }
});

test('attentionBackward: causal, several heads, dk != dv, odd lengths, strided views', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 600;
  for (const [b, l, H, dk, dv] of [
    [1, 1, 1, 3, 3],
    [2, 7, 3, 5, 4],
    [1, 33, 2, 8, 9],
  ] as const) {
    const r = (w: number, pad = 0) => rand(g, [b, l, w], seed++, { pad });
    const q = r(H * dk, 1),
      k = r(H * dk),
      v = r(H * dv, 2),
      gr = r(H * dv);
    const dq = r(H * dk, 1),
      dK = r(H * dk),
      dV = r(H * dv, 1);
    const scale = 1 / Math.sqrt(dk);
    const args = (s: 'c' | 'g') => ({
      dq: dq[s],
      dk: dK[s],
      dv: dV[s],
      g: gr[s],
      q: q[s],
      k: k[s],
      v: v[s],
      heads: H,
      scale,
    });
    C.attentionBackward!(args('c'));
    g.attentionBackward(args('g'));
    const what = `attentionBackward b=${b} l=${l} H=${H} dk=${dk} dv=${dv}`;
    await check(t, dq, `${what} dq`);
    await check(t, dK, `${what} dk`);
    await check(t, dV, `${what} dv`);
  }
});
