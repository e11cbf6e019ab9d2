import assert from 'node:assert/strict';
import type { Backend } from '../../src/backend/backend.js';
import { CausalSelfAttention, type CausalAttentionWeights } from '../../src/mixers/causal-attention.js';
import { Mlp, type MlpWeights } from '../../src/mixers/mlp.js';
import { stackAttention, stackGateUp } from '../../src/models/stack-rows.js';
import { f32ToHalf, type DType } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertClose, randomArray } from './compare.js';

/**
 * The stacked projections (models/stack-rows.ts) against the separate ones, on any backend: the same
 * weights held apart and stacked, the mixers' prefill and cached steps compared, the products per step
 * counted (one for [q; k; v], one for [gate; up]), and the parameters' names, shapes and values unchanged.
 * Odd sizes (d 37, 3 query heads of 6 with 1 key/value head, partial rotary, I 19): no width is a
 * multiple of a vector or block, so every view starts off any alignment.
 */

const d = 37;

/** Counts `matmul` calls on the backend while `f` runs. */
function products(bk: Backend, f: () => void): number {
  const own = Object.getOwnPropertyDescriptor(bk, 'matmul');
  const matmul = bk.matmul.bind(bk);
  let n = 0;
  (bk as { matmul: Backend['matmul'] }).matmul = (...a) => {
    n++;
    matmul(...a);
  };
  try {
    f();
  } finally {
    if (own) Object.defineProperty(bk, 'matmul', own);
    else delete (bk as Partial<Backend>).matmul;
  }
  return n;
}

function upload(bk: Backend, data: Float32Array, shape: number[], dtype: DType, name: string): Tensor {
  const t = (
    dtype === 'f16' || dtype === 'bf16'
      ? bk.upload(f32ToHalf(data, dtype), shape, dtype)
      : bk.upload(data, shape, dtype)
  ).keep();
  t.name = name;
  return t;
}

async function sameParameters(a: Map<string, Tensor>, b: Map<string, Tensor>): Promise<void> {
  assert.deepEqual([...b.keys()], [...a.keys()]);
  for (const [k, t] of a) {
    assert.deepEqual(b.get(k)!.shape, t.shape, k);
    assert.equal(b.get(k)!.dtype, t.dtype, k);
    assert.deepEqual(await b.get(k)!.read(), await t.read(), k);
  }
}

/** Prefill of 5 tokens then 3 cached steps, stacked and separate; returns the largest difference seen. */
export async function checkStackedAttention(bk: Backend, dtype: DType, biased: boolean, tol: number): Promise<void> {
  const H = 3,
    G = 1,
    dh = 6;
  const shapes: [string, number][] = [
    ['q', H * dh],
    ['k', G * dh],
    ['v', G * dh],
  ];
  const weights = (): CausalAttentionWeights => {
    const m = (name: string, r: number, c: number, seed: number): Tensor =>
      upload(bk, randomArray(r * c, seed, -0.3, 0.3), [r, c], dtype, `${name}_proj.weight`);
    const v = (name: string, n: number, seed: number): Tensor | null =>
      biased ? upload(bk, randomArray(n, seed, -0.2, 0.2), [n], 'f32', `${name}_proj.bias`) : null;
    const [q, k, vv] = shapes.map(([n, r], i) => m(n, r, d, 10 + i));
    const [qb, kb, vb] = shapes.map(([n, r], i) => v(n, r, 20 + i));
    return { q, k, v: vv, o: m('o', d, H * dh, 13), qBias: qb, kBias: kb, vBias: vb, oBias: v('o', d, 23) };
  };
  const dims = { d, heads: H, kvHeads: G, headDim: dh, rotaryDim: 4, ropeTheta: 10000, scale: 0.4 };
  const apart = new CausalSelfAttention(bk, weights(), dims);
  const stackedW = stackAttention(bk, weights());
  assert.ok(stackedW.qkv, `${dtype}: q, k, v stacked`);
  assert.deepEqual(stackedW.qkv.shape, [H * dh + 2 * G * dh, d]);
  for (const t of [stackedW.q, stackedW.k, stackedW.v]) assert.equal(t.base, stackedW.qkv, 'a view of the stack');
  assert.equal(!!stackedW.qkvBias, biased);
  const stacked = new CausalSelfAttention(bk, stackedW, dims);
  await sameParameters(apart.parameters(), stacked.parameters());

  const x = upload(bk, randomArray(5 * d, 30), [1, 5, d], 'f32', 'x');
  const sa = apart.initState(1),
    ss = stacked.initState(1);
  assertClose(
    await stacked.forward(x, ss, 0).readFloat(),
    await apart.forward(x, sa, 0).readFloat(),
    `${dtype} prefill`,
    tol,
    tol,
  );
  for (let t = 0; t < 3; t++) {
    const xt = upload(bk, randomArray(d, 40 + t), [1, d], 'f32', 'x');
    const oa = bk.alloc([1, d]),
      os = bk.alloc([1, d]);
    const na = products(bk, () => apart.step(xt, oa, sa, 5 + t));
    const ns = products(bk, () => stacked.step(xt, os, ss, 5 + t));
    assert.equal(na, 4, 'separate: q, k, v, o');
    assert.equal(ns, 2, 'stacked: [q; k; v], o');
    assertClose(await os.readFloat(), await oa.readFloat(), `${dtype} step ${t}`, tol, tol);
  }
}

/** The swiglu MLP's step (2 rows) and forward, gate and up stacked and separate. */
export async function checkStackedMlp(bk: Backend, dtype: DType, biased: boolean, tol: number): Promise<void> {
  const I = 19;
  const weights = (): MlpWeights => {
    const m = (name: string, r: number, c: number, seed: number): Tensor =>
      upload(bk, randomArray(r * c, seed, -0.3, 0.3), [r, c], dtype, `${name}_proj.weight`);
    const v = (name: string, n: number, seed: number): Tensor | null =>
      biased ? upload(bk, randomArray(n, seed, -0.2, 0.2), [n], 'f32', `${name}_proj.bias`) : null;
    return {
      up: m('up', I, d, 1),
      gate: m('gate', I, d, 2),
      down: m('down', d, I, 3),
      upBias: v('up', I, 4),
      gateBias: v('gate', I, 5),
      downBias: v('down', d, 6),
    };
  };
  const apart = new Mlp(bk, weights(), 'swiglu');
  const stackedW = stackGateUp(bk, weights());
  assert.ok(stackedW.gateUp, `${dtype}: gate and up stacked`);
  assert.deepEqual(stackedW.gateUp.shape, [2 * I, d]);
  assert.equal(stackedW.gate!.base, stackedW.gateUp);
  const stacked = new Mlp(bk, stackedW, 'swiglu');
  await sameParameters(apart.parameters(), stacked.parameters());
  const x = upload(bk, randomArray(2 * d, 7), [2, d], 'f32', 'x');
  const oa = bk.alloc([2, d]),
    os = bk.alloc([2, d]);
  assert.equal(
    products(bk, () => apart.step(x, oa, {})),
    3,
  );
  assert.equal(
    products(bk, () => stacked.step(x, os, {})),
    2,
  );
  assertClose(await os.readFloat(), await oa.readFloat(), `${dtype} mlp step`, tol, tol);
  const x3 = x.reshape([1, 2, d]);
  assertClose(
    await stacked.forward(x3).readFloat(),
    await apart.forward(x3).readFloat(),
    `${dtype} mlp forward`,
    tol,
    tol,
  );
}

/** A quantised dtype is left separate: the weights come back as given, the tensors untouched. */
export function checkQuantizedStaysSeparate(bk: Backend, dtype: 'q8' | 'q4'): void {
  const m = (r: number, seed: number): Tensor => upload(bk, randomArray(r * d, seed), [r, d], dtype, 'w');
  const w: MlpWeights = { up: m(19, 1), gate: m(19, 2), down: m(d, 3), upBias: null, gateBias: null, downBias: null };
  assert.equal(stackGateUp(bk, w), w);
  assert.ok(!w.up.disposed && !w.gate!.disposed);
  const a: CausalAttentionWeights = {
    q: m(18, 4),
    k: m(6, 5),
    v: m(6, 6),
    o: m(d, 7),
    qBias: null,
    kBias: null,
    vBias: null,
    oBias: null,
  };
  assert.equal(stackAttention(bk, a), a);
}
