import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as F from '../../src/ops/ops.js';
import { backward } from '../../src/autograd/backward.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { isMambaError } from '../../src/errors.js';
import type { UnaryOp } from '../../src/backend/contract/inference.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { missingTrainingKernels } from '../../src/backend/contract/training.js';
import { f64, gradcheck, randn, type GradInput } from './f64.js';

/**
 * Every op of src/ops/ops.ts (and the views narrow/reshape) against central differences in f64, on
 * odd sizes, with inputs that are views where the models use views. The tolerance 1e-7 (relative to
 * the largest gradient of each input) is far above f64 difference error (~1e-9) and far below any
 * real mistake (a wrong term shows up at 1e-2 or more).
 */
const TOL = 1e-7;
const inp = (name: string, shape: number[], seed: number, scale = 1, requiresGrad = true): GradInput => ({
  name,
  shape,
  data: randn(
    shape.reduce((a, b) => a * b, 1),
    seed,
    scale,
  ),
  requiresGrad,
});
function check(what: string, f: (xs: Tensor[]) => Tensor, inputs: GradInput[], max = 40): void {
  const r = gradcheck(f, inputs, max);
  assert.ok(r.checked > 0, `${what}: nothing checked`);
  assert.ok(r.worst < TOL, `${what}: relative error ${r.worst.toExponential(2)} at ${r.worstWhere}`);
}
const ids = (data: number[], shape: number[]): Tensor => f64.upload(Int32Array.from(data), shape, 'i32');

test('linear: x, weight and bias, with x a contiguous tensor and a narrow view', () => {
  check('linear', ([x, w, b]) => F.linear(x!, w!, b!), [inp('x', [2, 3, 5], 1), inp('w', [7, 5], 2), inp('b', [7], 3)]);
  check('linear no bias', ([x, w]) => F.linear(x!, w!), [inp('x', [3, 5], 4), inp('w', [1, 5], 5)]);
  check('linear of a view', ([x, w]) => F.linear(x!.narrow(2, 5), w!), [
    inp('xfull', [2, 3, 9], 6),
    inp('w', [4, 5], 7),
  ]);
  check('linear, weight only', ([x, w]) => F.linear(x!, w!), [inp('x', [3, 5], 8, 1, false), inp('w', [6, 5], 9)]);
});

test('matmul: all four transpositions', () => {
  for (const tA of [false, true])
    for (const tB of [false, true]) {
      const [m, q, p] = [3, 5, 7];
      check(`matmul tA=${tA} tB=${tB}`, ([a, b]) => F.matmul(a!, b!, tA, tB), [
        inp('a', tA ? [q, m] : [m, q], 10),
        inp('b', tB ? [p, q] : [q, p], 11),
      ]);
    }
});

test('embedding: repeated ids scatter-add into the table', () => {
  const id = [0, 3, 3, 6, 1, 3, 0, 2, 5, 5];
  check('embedding', ([t]) => F.embedding(ids(id, [2, 5]), t!), [inp('table', [7, 3], 12)]);
});

test('rmsnorm: x (also as a view) and weight', () => {
  check('rmsnorm', ([x, w]) => F.rmsnorm(x!, w!, 1e-5), [inp('x', [3, 5, 7], 13), inp('w', [7], 14)]);
  check('rmsnorm view', ([x, w]) => F.rmsnorm(x!.narrow(1, 7), w!, 1e-2), [inp('x', [5, 11], 15), inp('w', [7], 16)]);
});

test('causalConv1d: with and without SiLU and bias, widths 1, 3, 4, on a view like u = xz[..., :e]', () => {
  for (const k of [1, 3, 4])
    for (const silu of [false, true]) {
      check(`conv k=${k} silu=${silu}`, ([x, w, b]) => F.causalConv1d(x!, w!, b!, silu), [
        inp('x', [2, 9, 5], 17),
        inp('w', [5, k], 18),
        inp('b', [5], 19),
      ]);
    }
  check('conv no bias', ([x, w]) => F.causalConv1d(x!, w!, null, true), [
    inp('x', [1, 6, 3], 20),
    inp('w', [3, 4], 21),
  ]);
  check('conv of a view', ([x, w, b]) => F.causalConv1d(x!.narrow(0, 5), w!, b!, true), [
    inp('xz', [2, 7, 10], 22),
    inp('w', [5, 4], 23),
    inp('b', [5], 24),
  ]);
});

test('selectiveScan: every input, B and C as views of one projection, several recompute chunks', () => {
  const [b, l, e, n] = [2, 11, 5, 3];
  const scanInputs = (): GradInput[] => [
    inp('u', [b, l, e], 30),
    inp('delta', [b, l, e], 31, 1),
    { name: 'A', shape: [e, n], data: randn(e * n, 32).map((v) => -Math.exp(v)) },
    inp('BC', [b, l, 2 + 2 * n], 33),
    inp('D', [e], 34),
    inp('z', [b, l, e], 35),
    inp('deltaBias', [e], 36),
    inp('h0', [b, e, n], 37),
  ];
  for (const chunk of [1, 4, 64]) {
    check(
      `scan chunk=${chunk}`,
      ([u, dl, A, BC, D, z, db]) =>
        F.selectiveScan({
          u: u!,
          delta: dl!,
          A: A!,
          B: BC!.narrow(2, n),
          C: BC!.narrow(2 + n, n),
          D: D!,
          z: z!,
          deltaBias: db!,
          deltaSoftplus: true,
          backwardChunk: chunk,
        }),
      scanInputs().slice(0, 7),
    );
  }
  check(
    'scan with h0, no softplus',
    ([u, dl, A, BC, D, z, db, h0]) =>
      F.selectiveScan({
        u: u!,
        delta: F.unary('softplus', dl!),
        A: A!,
        B: BC!.narrow(0, n),
        C: BC!.narrow(n, n),
        D: D!,
        z: z!,
        deltaBias: db!,
        deltaSoftplus: false,
        h0: h0!,
        backwardChunk: 3,
      }),
    scanInputs(),
  );
  check(
    'scan without D, z, bias',
    ([u, dl, A, BC]) =>
      F.selectiveScan({
        u: u!,
        delta: dl!,
        A: A!,
        B: BC!.narrow(1, n),
        C: BC!.narrow(1 + n, n),
        D: null,
        z: null,
        deltaBias: null,
        deltaSoftplus: true,
      }),
    scanInputs().slice(0, 4),
  );
});

test('unary: every op', () => {
  const ops: [UnaryOp, (v: number) => number][] = [
    ['silu', (v) => v * 3],
    ['softplus', (v) => v * 30],
    ['exp', (v) => v],
    ['neg', (v) => v],
    ['negexp', (v) => v],
    ['relu', (v) => v + 0.05],
    ['gelu', (v) => v * 4],
    ['sigmoid', (v) => v * 3],
    ['tanh', (v) => v * 2],
    ['square', (v) => v],
    ['sqrt', (v) => Math.abs(v) + 0.2],
    ['log', (v) => Math.abs(v) + 0.2],
  ];
  for (const [op, dom] of ops) {
    const x = inp('x', [3, 7], 40);
    x.data = x.data.map(dom);
    if (op === 'relu') x.data = x.data.map((v) => (Math.abs(v) < 1e-3 ? 0.5 : v)); // away from the kink
    check(`unary ${op}`, ([t]) => F.unary(op, t!), [x]);
  }
});

test('binary: add, sub, mul, div with same-shape and broadcast second operands', () => {
  for (const op of ['add', 'sub', 'mul', 'div'] as const) {
    const bscale = op === 'div' ? 0.5 : 1;
    const pos = (g: GradInput): GradInput =>
      op === 'div' ? { ...g, data: g.data.map((v) => Math.sign(v) * (Math.abs(v) + 0.5) * bscale) } : g;
    check(`${op} same shape`, ([a, b]) => F.binary(op, a!, b!), [inp('a', [3, 5], 41), pos(inp('b', [3, 5], 42))]);
    check(`${op} broadcast`, ([a, b]) => F.binary(op, a!, b!), [inp('a', [2, 3, 5], 43), pos(inp('b', [5], 44))]);
    check(`${op} b as rows x cols`, ([a, b]) => F.binary(op, a!, b!), [
      inp('a', [2, 3, 5], 45),
      pos(inp('b', [6, 5], 46)),
    ]);
    check(`${op} same tensor twice`, ([a]) => F.binary(op, a!, a!), [pos(inp('a', [4, 3], 47))]);
  }
});

test('sum, mean, contiguous, narrow and reshape', () => {
  check('sum', ([x]) => F.sum(x!), [inp('x', [3, 4, 5], 50)]);
  check('mean of a view', ([x]) => F.mean(x!.narrow(1, 3)), [inp('x', [3, 7], 51)]);
  check('contiguous of a view', ([x]) => F.contiguous(x!.narrow(2, 3)), [inp('x', [2, 3, 7], 52)]);
  check('reshape then narrow', ([x]) => F.mul(x!.reshape([6, 5]).narrow(1, 2), x!.reshape([6, 5]).narrow(3, 2)), [
    inp('x', [2, 3, 5], 53),
  ]);
  // u and z of one projection: both windows of the parent's gradient are filled.
  check(
    'two windows',
    ([x, w]) => F.mul(F.unary('silu', F.linear(x!, w!).narrow(0, 4)), F.linear(x!, w!).narrow(4, 4)),
    [inp('x', [3, 5], 54), inp('w', [8, 5], 55)],
  );
});

test('crossEntropy: mean and sum, ignored rows (negative targets) get no gradient', () => {
  const t = [3, -1, 0, 6, 6, -100, 2];
  check('ce mean', ([x]) => F.crossEntropy(x!, ids(t, [7])), [inp('logits', [7, 7], 60, 3)], 49);
  check(
    'ce sum',
    ([x]) => F.crossEntropy(x!.reshape([1, 7, 7]), ids(t, [1, 7]), 'sum'),
    [inp('logits', [7, 7], 61, 3)],
    49,
  );
  // And the value: -log softmax at the target, averaged over the 5 rows with a target.
  const L = randn(14, 62, 2);
  const got = f64.read64(F.crossEntropy(f64.upload64(L, [2, 7]), ids([4, -1], [2])))[0];
  const row = Array.from(L.subarray(0, 7));
  const want = Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[4];
  assert.ok(Math.abs(got - want) < 1e-12, `${got} vs ${want}`);
});

test('engine: gradients accumulate over backward calls; a freed graph, a non-grad output and a conv state are clear errors', () => {
  const w = f64.upload64([1, 2, 3], [3]);
  w.requiresGrad = true;
  backward(F.sum(F.mul(w, w)));
  backward(F.sum(F.mul(w, w)));
  assert.deepEqual([...f64.read64(w.grad!)], [4, 8, 12]); // 2 x 2w
  const y = F.sum(F.mul(w, w));
  backward(y);
  assert.throws(
    () => backward(y),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /second time/.test((e as Error).message),
  );
  const plain = f64.upload64([1, 2], [2]);
  assert.throws(
    () => backward(F.sum(plain)),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT'),
  );
  const x = f64.upload64(randn(12, 1), [1, 4, 3]);
  x.requiresGrad = true;
  assert.throws(
    () => F.causalConv1d(x, f64.upload64(randn(6, 2), [3, 2]), null, true, f64.zeros([1, 3, 2])),
    (e: unknown) => isMambaError(e, 'UNSUPPORTED'),
  );
});

test('noGrad records nothing; inputs that do not require gradients record nothing', () => {
  const w = f64.upload64([1, 2, 3], [3]);
  w.requiresGrad = true;
  const y = noGrad(() => F.mul(w, w));
  assert.equal(y.requiresGrad, false);
  assert.equal(y.gradFn, undefined);
  const v = F.mul(f64.upload64([1, 2, 3], [3]), f64.upload64([1, 2, 3], [3]));
  assert.equal(v.gradFn, undefined);
  assert.equal(w.narrow(0, 2).requiresGrad, true);
  assert.equal(noGrad(() => w.narrow(0, 2)).requiresGrad, false);
});

test('a backend without a training kernel runs the forward, and the op that needs the kernel says which is missing', () => {
  const bk = new CpuBackend();
  Object.assign(bk, { rmsnormBackward: undefined });
  assert.deepEqual(missingTrainingKernels(bk), ['rmsnormBackward']);
  const x = bk.upload(Float32Array.from([1, 2, 3, 4]), [2, 2]);
  const w = bk.upload(Float32Array.from([1, 1]), [2]);
  w.requiresGrad = true;
  const y = F.rmsnorm(x, w, 1e-5);
  assert.throws(
    () => backward(F.sum(y)),
    (e: unknown) => isMambaError(e, 'UNSUPPORTED') && /rmsnormBackward/.test((e as Error).message),
  );
});
