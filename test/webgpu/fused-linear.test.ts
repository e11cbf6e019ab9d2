import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../../src/backend/backend.js';
import type { FusedLinearArgs } from '../../src/backend/contract/decode.js';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { isMambaError } from '../../src/errors.js';
import { f32ToHalf, type DType } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertClose, randomArray } from '../helpers/compare.js';
import { disposeGpu, pipeKeys, requireAdapter } from '../helpers/webgpu.js';

/**
 * Backend.fusedLinear (issue 14: a hybrid decode block in a few launches) against the composition of the
 * kernels it replaces: rmsnorm / SwiGLU / Mamba-2's gated norm, the product, the conv step on a range of
 * output columns, and the scaled residual add. On WebGPU against its own unfused kernels (every weight
 * dtype, q4 included: its products multiply f32 activations) and, for f32 weights, against the CPU
 * TypeScript reference; odd depths (the scalar path) and multiples of 32 (the 16-byte paths), 1-5 rows.
 */
after(disposeGpu);
const ref = new CpuBackend({ kernels: 'ts' });

type Case = {
  m: number;
  q: number;
  p: number;
  dtype: DType;
  pro: 'none' | 'norm' | 'glu' | 'gate' | 'gate-before' | 'gate-plain';
  acc?: number;
  conv?: { from: number; ch: number; k: number; bias: boolean };
  bias?: boolean;
};

/** Inputs of a case as host arrays (the same values on every backend). */
function inputs(c: Case, seed: number) {
  const xCols = c.pro === 'glu' ? 2 * c.q : c.q;
  return {
    x: randomArray(c.m * xCols, seed, -2, 2),
    w: randomArray(c.p * c.q, seed + 1, -0.3, 0.3),
    bias: randomArray(c.p, seed + 2, -0.5, 0.5),
    nw: randomArray(c.q, seed + 3, 0.5, 1.5),
    z: randomArray(c.m * c.q, seed + 4, -3, 3),
    out: randomArray(c.m * c.p, seed + 5, -1, 1),
    cw: c.conv ? randomArray(c.conv.ch * c.conv.k, seed + 6, -0.5, 0.5) : null,
    cb: c.conv ? randomArray(c.conv.ch, seed + 7, -0.5, 0.5) : null,
    cs: c.conv ? randomArray(c.m * c.conv.ch * c.conv.k, seed + 8, -1, 1) : null,
  };
}
type Inputs = ReturnType<typeof inputs>;

/**
 * The case's tensors on `bk`: x as a view with a column offset, to test offsets (which takes the kernel's
 * scalar path), or `aligned`, starting on a 16-byte boundary (its 16-byte paths where q allows).
 */
function tensors(bk: Backend, c: Case, v: Inputs, aligned = false) {
  const xCols = c.pro === 'glu' ? 2 * c.q : c.q;
  const wide = new Float32Array(c.m * (xCols + 3));
  for (let i = 0; i < c.m; i++) wide.set(v.x.subarray(i * xCols, (i + 1) * xCols), i * (xCols + 3) + 1);
  const half = c.dtype === 'f16' || c.dtype === 'bf16';
  return {
    x: aligned ? bk.upload(v.x, [c.m, xCols]) : bk.upload(wide, [c.m, xCols + 3]).narrow(1, xCols),
    w: bk.upload(half ? f32ToHalf(v.w, c.dtype as 'f16' | 'bf16') : v.w, [c.p, c.q], c.dtype),
    bias: c.bias ? bk.upload(v.bias, [c.p]) : null,
    nw: bk.upload(v.nw, [c.q]),
    z: bk.upload(v.z, [c.m, c.q]),
    out: bk.upload(v.out, [c.m, c.p]),
    cw: c.conv ? bk.upload(v.cw!, [c.conv.ch, c.conv.k]) : null,
    cb: c.conv?.bias ? bk.upload(v.cb!, [c.conv.ch]) : null,
    cs: c.conv ? bk.upload(v.cs!, [c.m, c.conv.ch, c.conv.k]) : null,
  };
}
type Tensors = ReturnType<typeof tensors>;

function args(c: Case, t: Tensors): FusedLinearArgs {
  const gate = (weight: Tensor | null, normBeforeGate: boolean) => ({ z: t.z, weight, eps: 1e-5, normBeforeGate });
  return {
    out: t.out,
    x: t.x,
    weight: t.w,
    bias: t.bias,
    norm: c.pro === 'norm' ? { weight: t.nw, eps: 1e-5 } : null,
    glu: c.pro === 'glu',
    gate:
      c.pro === 'gate'
        ? gate(t.nw, false)
        : c.pro === 'gate-before'
          ? gate(t.nw, true)
          : c.pro === 'gate-plain'
            ? gate(null, false)
            : null,
    ...(c.acc !== undefined ? { accumulate: c.acc } : {}),
    conv: c.conv ? { from: c.conv.from, weight: t.cw!, bias: t.cb, state: t.cs! } : null,
  };
}

/** The same work with the separate kernels (the specification of fusedLinear). */
function unfused(bk: Backend, c: Case, t: Tensors): void {
  const { m, q, p } = c;
  let x = t.x;
  if (c.pro === 'norm') {
    x = bk.alloc([m, q]);
    bk.addRmsnorm(x, t.x, null, t.nw, 1e-5);
  } else if (c.pro === 'glu') {
    x = bk.alloc([m, q]);
    bk.unary('silu', x, t.x.narrow(0, q));
    bk.binary('mul', x, x, t.x.narrow(q, q));
  } else if (c.pro === 'gate' || c.pro === 'gate-before') {
    x = bk.alloc([m, q]);
    bk.gatedRmsnorm(x, t.x, t.z, t.nw, { groupSize: q, eps: 1e-5, normBeforeGate: c.pro === 'gate-before' });
  } else if (c.pro === 'gate-plain') {
    x = bk.alloc([m, q]);
    bk.unary('silu', x, t.z);
    bk.binary('mul', x, t.x, x);
  }
  const v = bk.alloc([m, p]);
  bk.matmul(v, x, t.w, { transB: true, bias: t.bias });
  if (c.conv) {
    const { from, ch } = c.conv;
    const o = bk.alloc([m, 1, ch]);
    const cols = bk.alloc([m, 1, ch]);
    bk.copy(cols, v.narrow(from, ch).reshape([m, 1, ch]));
    bk.causalConv1d(o, cols, t.cw!, t.cb, t.cs!, true);
    bk.copy(v.narrow(from, ch), o.reshape([m, ch]));
  }
  if (c.acc !== undefined) {
    bk.binary('mul', v, v, bk.upload(new Float32Array(p).fill(c.acc), [p]));
    bk.binary('add', t.out, t.out, v);
  } else bk.copy(t.out, v);
}

const CASES: Case[] = [];
for (const dtype of ['f32', 'f16', 'q4'] as DType[])
  for (const [m, q, p] of [
    [1, 64, 40],
    [3, 96, 37],
    [5, 37, 29],
  ] as const) {
    if (dtype === 'q4' && q % 32 !== 0) continue; // (q4 rows pad to whole blocks; both paths are covered by q = 64, 96)
    CASES.push({ m, q, p, dtype, pro: 'norm', acc: 1, bias: true });
    CASES.push({ m, q, p, dtype, pro: 'norm', conv: { from: 5, ch: p - 9, k: 4, bias: true } });
    CASES.push({ m, q, p, dtype, pro: 'glu', acc: 0.22 });
    CASES.push({ m, q, p, dtype, pro: 'gate', acc: -1.5, bias: true });
    CASES.push({ m, q, p, dtype, pro: 'gate-before', acc: 1 });
    CASES.push({ m, q, p, dtype, pro: 'gate-plain' });
    CASES.push({ m, q, p, dtype, pro: 'none', conv: { from: 0, ch: p, k: 3, bias: false } });
  }

const what = (c: Case): string =>
  `${c.dtype} m=${c.m} q=${c.q} p=${c.p} ${c.pro}${c.acc !== undefined ? ` acc=${c.acc}` : ''}${c.conv ? ` conv[${c.conv.from},+${c.conv.ch}) k=${c.conv.k}` : ''}${c.bias ? ' bias' : ''}`;

test('fusedLinear on WebGPU equals its unfused kernels (and the CPU reference for f32 weights)', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 100;
  for (const c of CASES) {
    const v = inputs(c, (seed += 11));
    const fused = tensors(g, c, v);
    assert.ok(g.fusesLinear(c.m, [fused.w]), `${what(c)}: fusesLinear`);
    g.fusedLinear(args(c, fused));
    const plain = tensors(g, c, v);
    unfused(g, c, plain);
    const out = (await g.read(fused.out)) as Float32Array;
    assertClose(out, (await g.read(plain.out)) as Float32Array, `${what(c)}: out, fused vs unfused GPU`, 2e-5, 2e-5);
    if (c.conv)
      assertClose(
        (await g.read(fused.cs!)) as Float32Array,
        (await g.read(plain.cs!)) as Float32Array,
        `${what(c)}: conv state`,
        1e-5,
        1e-5,
      );
    if (c.dtype === 'f32') {
      const r = tensors(ref, c, v);
      unfused(ref, c, r);
      assertClose(out, ref.readSync(r.out) as Float32Array, `${what(c)}: out vs CPU reference`, 2e-5, 2e-5);
    }
  }
});

test('the matrix-vector kernel loading four W words ahead (matvecUnroll 4) gives the sums of one a step (1), bit for bit', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const { keys, restore } = pipeKeys(g);
  // 8 W rows a workgroup, 32 threads a row: q = 4192 (131 blocks of 32) gives every thread some words in
  // the loop that loads four ahead and some in the one-word loop after it, in every dtype
  g.options.matvecRows = 8;
  try {
    let seed = 700;
    for (const dtype of ['f32', 'f16', 'bf16', 'q4'] as DType[])
      for (const m of [1, 3])
        for (const c of [
          { m, q: 4192, p: 37, dtype, pro: 'norm', acc: 1, bias: true },
          { m, q: 4192, p: 37, dtype, pro: 'glu', acc: 0.5 },
          { m, q: 4192, p: 37, dtype, pro: 'gate' },
          { m, q: 4192, p: 37, dtype, pro: 'none', bias: true },
        ] as Case[]) {
          const v = inputs(c, (seed += 11));
          const run = async (U: 1 | 4): Promise<Float32Array> => {
            g.options.matvecUnroll = U;
            keys.length = 0;
            const tt = tensors(g, c, v, true);
            g.fusedLinear(args(c, tt));
            const out = (await g.read(tt.out)) as Float32Array;
            const k = keys.find((s) => s.startsWith('matvec:'));
            assert.ok(
              k?.split(':')[3] === 'true' && k.endsWith(`:${U}`),
              `${what(c)}: the 16-byte path, U ${U} (${k})`,
            );
            return out;
          };
          const four = await run(4);
          const one = await run(1);
          assert.deepEqual(four, one, `${what(c)}: U 4 vs U 1`);
          if (dtype === 'f32') {
            const r = tensors(ref, c, v, true);
            unfused(ref, c, r);
            assertClose(four, ref.readSync(r.out) as Float32Array, `${what(c)}: vs CPU reference`, 2e-5, 2e-5);
          }
        }
  } finally {
    restore();
    g.options.matvecRows = 0;
    g.options.matvecUnroll = 4;
  }
});

test('fusedLinear refuses what it does not fuse, naming it', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const w = g.upload(randomArray(8 * 64, 1), [8, 64], 'q4');
  const wide = g.upload(randomArray(16 * 64, 2), [16, 64], 'q4');
  assert.equal(g.fusesLinear(1, [w]), true);
  assert.equal(g.fusesLinear(9, [w]), false, 'more rows than the matrix-vector kernel takes');
  assert.equal(g.fusesLinear(1, [wide.narrow(0, 32)]), false, 'a view of a q4 tensor');
  const x = g.upload(randomArray(64, 3), [1, 64]);
  const out = g.alloc([1, 8]);
  assert.throws(
    () => g.fusedLinear({ out: g.alloc([9, 8]), x: g.upload(randomArray(9 * 64, 4), [9, 64]), weight: w }),
    (e: unknown) => isMambaError(e, 'UNSUPPORTED') && /at most 8 rows/.test((e as Error).message),
  );
  assert.throws(
    () =>
      g.fusedLinear({ out: g.alloc([1, 16]), x: g.upload(randomArray(32, 7), [1, 32]), weight: wide.narrow(0, 32) }),
    (e: unknown) => isMambaError(e, 'UNSUPPORTED') && /not fused/.test((e as Error).message),
  );
  assert.throws(
    () => g.fusedLinear({ out, x, weight: w, glu: true }),
    (e: unknown) => isMambaError(e, 'SHAPE_MISMATCH') && /128 for a weight/.test((e as Error).message),
  );
  assert.throws(
    () =>
      g.fusedLinear({
        out,
        x,
        weight: w,
        norm: { weight: g.upload(randomArray(64, 5), [64]), eps: 1e-5 },
        glu: true,
      }),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /alternatives/.test((e as Error).message),
  );
  assert.throws(
    () =>
      g.fusedLinear({
        out,
        x,
        weight: w,
        conv: { from: 4, weight: g.upload(randomArray(6 * 4, 6), [6, 4]), bias: null, state: g.zeros([1, 6, 4]) },
      }),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /\[4, 10\) do not lie/.test((e as Error).message),
  );
});
