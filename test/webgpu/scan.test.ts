import { after, test, type TestContext } from 'node:test';
import type { Backend } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertClose } from '../helpers/compare.js';
import { disposeGpu, openAdapter, requireAdapter } from '../helpers/webgpu.js';
import { rand, type Pair } from './pair.js';

after(disposeGpu);

interface Case {
  b: number;
  l: number;
  e: number;
  n: number;
  z?: boolean;
  D?: boolean;
  bias?: boolean;
  softplus?: boolean;
  h0?: 'none' | 'own' | 'alias';
  hOut?: boolean;
  bc?: 'views' | 'separate';
}

/** Runs the scan on both backends with the same inputs and compares y and the final state. */
async function check(g: Backend, c: Case, seed: number, what: string): Promise<void> {
  const { b, l, e, n } = c;
  const r = 3;
  const u = rand(g, [b, l, e], seed, { pad: 1 });
  const delta =
    c.softplus === false
      ? rand(g, [b, l, e], seed + 1, { lo: 0.01, hi: 0.5 })
      : rand(g, [b, l, e], seed + 1, { lo: -3, hi: 1 });
  const z = c.z === false ? null : rand(g, [b, l, e], seed + 2, { pad: 2 });
  const A = rand(g, [e, n], seed + 3, { lo: -2.5, hi: -0.05 });
  const D = c.D === false ? null : rand(g, [e], seed + 4);
  const bias = c.bias === false ? null : rand(g, [e], seed + 5, { lo: -1, hi: 0.5 });
  let B: Pair, C: Pair;
  if (c.bc === 'separate') {
    B = rand(g, [b, l, n], seed + 6);
    C = rand(g, [b, l, n], seed + 7, { pad: 1 });
  } else {
    const dbc = rand(g, [b, l, r + 2 * n], seed + 6);
    B = { c: dbc.c.narrow(r, n), g: dbc.g.narrow(r, n) };
    C = { c: dbc.c.narrow(r + n, n), g: dbc.g.narrow(r + n, n) };
  }
  const y = rand(g, [b, l, e], seed + 8);
  const h0 = c.h0 === 'own' || c.h0 === 'alias' ? rand(g, [b, e, n], seed + 9) : null;
  const hOut = c.h0 === 'alias' ? h0 : c.hOut ? rand(g, [b, e, n], seed + 10) : null;
  const args = (k: 'c' | 'g') => ({
    y: y[k],
    u: u[k],
    delta: delta[k],
    A: A[k],
    B: B[k],
    C: C[k],
    D: D?.[k] ?? null,
    z: z?.[k] ?? null,
    deltaBias: bias?.[k] ?? null,
    deltaSoftplus: c.softplus !== false,
    h0: h0?.[k] ?? null,
    hOut: hOut?.[k] ?? null,
  });
  cpu().selectiveScan(args('c'));
  g.selectiveScan(args('g'));
  assertClose(await y.g.read(), await y.c.read(), `${what}: y`, 2e-4, 2e-5);
  if (hOut) assertClose(await hOut.g.read(), await hOut.c.read(), `${what}: hOut`, 2e-4, 2e-5);
  if (h0 && c.h0 === 'own') assertClose(await h0.g.read(), await h0.c.read(), `${what}: h0 untouched`, 0, 0);
}

const CASES: Case[] = [
  { b: 1, l: 1, e: 13, n: 16, h0: 'alias' }, // the recurrent step
  { b: 2, l: 1, e: 5, n: 7, h0: 'alias', bc: 'separate' },
  { b: 2, l: 7, e: 9, n: 16, h0: 'own', hOut: true },
  { b: 1, l: 100, e: 33, n: 16, hOut: true },
  { b: 3, l: 300, e: 10, n: 5, h0: 'alias' },
  { b: 2, l: 77, e: 70, n: 16, z: false, D: false, bias: false },
  { b: 1, l: 50, e: 6, n: 4, softplus: false, h0: 'own', hOut: true, bc: 'separate' },
  { b: 2, l: 33, e: 65, n: 17, h0: 'own' },
];

async function runAll(t: TestContext, g: Backend | null, label: string): Promise<void> {
  if (!g) return;
  let seed = 1000;
  for (const c of CASES) {
    await check(g, c, seed, `${label} ${JSON.stringify(c)}`);
    seed += 20;
  }
  void t;
}

test('selectiveScan matches the CPU reference (chunk length chosen from the shape)', async (t) => {
  await runAll(t, await requireAdapter(t), 'default chunks');
});

for (const chunk of [16, 32, 64]) {
  test(`selectiveScan with chunk length ${chunk}: carries between chunks, l not a multiple of the chunk`, async (t) => {
    const g = await openAdapter(t, { scanChunk: chunk });
    if (!g) return;
    try {
      await runAll(t, g, `chunk ${chunk}`);
    } finally {
      g.dispose();
    }
  });
}

test('selectiveScan: a long sequence in one call equals the same sequence fed in two pieces through the state', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const b = 2,
    l = 200,
    e = 24,
    n = 16,
    l1 = 77;
  const T = (p: Pair): Tensor => p.g;
  const u = rand(g, [b, l, e], 1),
    delta = rand(g, [b, l, e], 2, { lo: -3, hi: 1 }),
    z = rand(g, [b, l, e], 3);
  const A = rand(g, [e, n], 4, { lo: -2, hi: -0.1 }),
    D = rand(g, [e], 5),
    bias = rand(g, [e], 6);
  const B = rand(g, [b, l, n], 7),
    C = rand(g, [b, l, n], 8);
  const yFull = g.alloc([b, l, e]);
  g.selectiveScan({
    y: yFull,
    u: T(u),
    delta: T(delta),
    A: T(A),
    B: T(B),
    C: T(C),
    D: T(D),
    z: T(z),
    deltaBias: T(bias),
    deltaSoftplus: true,
    h0: null,
    hOut: null,
  });
  // The same on the CPU in two pieces: the reference for the carried state.
  const c = cpu();
  const h = c.zeros([b, e, n]);
  const ys: Float32Array[] = [];
  for (const [t0, len] of [
    [0, l1],
    [l1, l - l1],
  ] as const) {
    const piece = (p: Pair, w: number): Tensor => {
      const host = c.readSync(p.c) as Float32Array;
      const out = new Float32Array(b * len * w);
      for (let bi = 0; bi < b; bi++) out.set(host.subarray((bi * l + t0) * w, (bi * l + t0 + len) * w), bi * len * w);
      return c.upload(out, [b, len, w]);
    };
    const y = c.alloc([b, len, e]);
    c.selectiveScan({
      y,
      u: piece(u, e),
      delta: piece(delta, e),
      A: A.c,
      B: piece(B, n),
      C: piece(C, n),
      D: D.c,
      z: piece(z, e),
      deltaBias: bias.c,
      deltaSoftplus: true,
      h0: h,
      hOut: h,
    });
    ys.push(c.readSync(y) as Float32Array);
  }
  const want = new Float32Array(b * l * e);
  for (let bi = 0; bi < b; bi++) {
    want.set(ys[0].subarray(bi * l1 * e, (bi + 1) * l1 * e), bi * l * e);
    want.set(ys[1].subarray(bi * (l - l1) * e, (bi + 1) * (l - l1) * e), (bi * l + l1) * e);
  }
  assertClose(await yFull.read(), want, 'full vs pieces', 2e-4, 2e-5);
});
