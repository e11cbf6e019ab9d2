import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { isMambaError } from '../../src/errors.js';
import type { LanguageModel } from '../../src/models/lm.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertClose } from '../helpers/compare.js';
import { join } from 'node:path';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { fixtureExpected, fixtureModel, ROOT } from '../helpers/fixture-model.js';
import { floatActivationProducts } from '../helpers/float-activations.js';
import { rand } from '../helpers/random.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

/**
 * q4 weights on WebGPU (matvec.wgsl's block path and its scalar path, matmul.wgsl's tiles, the
 * embedding gather, all through lib/q4.wgsl) against the CPU reference kernels (backend/cpu/reference/q4.ts;
 * the products through floatActivationProducts: WebGPU multiplies f32 activations, the CPU int8 ones),
 * on sizes that are not multiples of the block, the vector width or the tiles; then whole models.
 */
after(disposeGpu);
const ref = new CpuBackend({ kernels: 'ts' });
// the reference for WebGPU's q4 products, which multiply f32 activations (the CPU's round them to int8)
const refF = floatActivationProducts(ref);

test('q4 upload and read-back: the values the CPU reference holds', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [rows, cols] of [
    [1, 1],
    [3, 33],
    [5, 64],
    [2, 77],
  ] as const) {
    const W = rand(rows * cols, rows + cols);
    assert.deepEqual(
      await g.upload(W, [rows, cols], 'q4').readFloat(),
      ref.readSync(ref.upload(W, [rows, cols], 'q4')),
    );
  }
});

test('q4 matmul on WebGPU equals the CPU reference: decode (aligned or not), prefill, transposes, bias', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [m, q, p] of [
    [1, 64, 9],
    [1, 37, 11],
    [2, 96, 33],
    [3, 33, 13],
    [4, 320, 70],
    [6, 45, 7],
    [8, 128, 5],
    [9, 70, 19],
    [21, 200, 67],
  ] as const) {
    for (const [transA, transB] of [
      [false, true],
      [false, false],
      [true, true],
    ] as const) {
      const X = rand(m * q, m + q),
        W = rand(q * p, p),
        B = rand(p, 3),
        O = rand(m * p, 4);
      const run = async (bk: Backend): Promise<Float32Array> => {
        const o = bk.upload(O, [m, p]);
        const bias = transA ? null : bk.upload(B, [p]);
        const a: Tensor = bk.upload(X, transA ? [q, m] : [m, q]);
        bk.matmul(o, a, bk.upload(W, transB ? [p, q] : [q, p], 'q4'), {
          transA,
          transB,
          bias,
          accumulate: m % 2 === 1,
        });
        return o.readFloat();
      };
      assertClose(
        await run(g),
        await run(refF),
        `m${m} q${q} p${p} tA${transA} tB${transB}`,
        1e-4,
        1e-5 * Math.sqrt(q),
      );
    }
  }
});

test('q4 embedding on WebGPU equals the CPU reference; views of q4 and copies are refused', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const d of [1, 7, 40, 77]) {
    const T = rand(19 * d, d);
    const ids = Int32Array.of(3, 0, 18, 3, 7);
    const gather = async (bk: typeof ref | NonNullable<typeof g>): Promise<Float32Array> => {
      const o = bk.alloc([5, d]);
      bk.embedding(o, bk.upload(ids, [5], 'i32'), bk.upload(T, [19, d], 'q4'));
      return o.readFloat();
    };
    assert.deepEqual(await gather(g), await gather(ref), `d ${d}`);
  }
  const w = g.upload(rand(4 * 64, 1), [4, 64], 'q4');
  assert.throws(
    () => g.matmul(g.alloc([1, 4]), g.alloc([1, 2]), w.narrow(0, 2), { transB: true }),
    (e) => isMambaError(e, 'UNSUPPORTED') && /views \(narrow\) of q4/.test(e.message),
  );
  assert.throws(
    () => g.copy(g.alloc([4, 64]), w),
    (e) => isMambaError(e, 'UNSUPPORTED'),
  );
  assert.throws(
    () => g.fill(w, 0),
    (e) => isMambaError(e, 'DTYPE_MISMATCH'),
  );
});

async function logits(model: LanguageModel, ids: Int32Array, b: number, l: number) {
  const parallel = await model.forward(model.backend.upload(ids, [b, l], 'i32')).readFloat();
  const V = model.vocabSize;
  const steps = new Float32Array(b * l * V);
  const state = model.initState(b);
  for (let t = 0; t < l; t++) {
    const row = Array.from({ length: b }, (_, i) => ids[i * l + t]);
    const lg = await model.stepIds(row, state).readFloat();
    for (let i = 0; i < b; i++) steps.set(lg.subarray(i * V, (i + 1) * V), (i * l + t) * V);
  }
  state.dispose();
  return { parallel, steps };
}

for (const name of ['mamba1-tied', 'mamba2-g1-tied']) {
  test(`${name} in q4: WebGPU logits (parallel and recurrent) equal the CPU q4 reference within 1e-4`, async (t) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const exp = await fixtureExpected(name);
    const gm = await fixtureModel(name, g, 'q4');
    const cm = await fixtureModel(name, refF, 'q4');
    const gl = await logits(gm, exp.ids, exp.b, exp.l),
      cl = await logits(cm, exp.ids, exp.b, exp.l);
    assertClose(gl.parallel, cl.parallel, `${name}: parallel`, 0, 1e-4);
    assertClose(gl.steps, cl.steps, `${name}: recurrent`, 0, 1e-4);
    assertClose(gl.steps, cl.parallel, `${name}: recurrent vs parallel`, 0, 1e-4);
  });
}

// the fused step: q4 in_proj with the conv epilogue and pre-norm, dt_proj decoded in the scan step
test('mamba1-tied in q4: the fused Mamba step equals the composed one', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const exp = await fixtureExpected('mamba1-tied');
  const fused = await logits(await fixtureModel('mamba1-tied', g, 'q4'), exp.ids, exp.b, exp.l);
  // the same backend with the optional method hidden: MambaMixer.step runs its reference composition
  const plain = Object.create(g, { mambaStep: { value: undefined } }) as Backend;
  const composed = await logits(await fixtureModel('mamba1-tied', plain, 'q4'), exp.ids, exp.b, exp.l);
  assertClose(fused.steps, composed.steps, 'fused vs composed step', 0, 2e-5);
});

// widths multiples of 32: matvec's block path, with the fused pre-norm and conv step
test('models/default in q4: WebGPU equals the CPU reference', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const dir = join(ROOT, 'models/default');
  const [b, l] = [2, 6];
  const ids = Int32Array.from({ length: b * l }, (_, i) => (i * 337 + 11) % 2048);
  const gl = await logits(await loadLanguageModel(dir, { backend: g, dtype: 'q4' }), ids, b, l);
  const cl = await logits(await loadLanguageModel(dir, { backend: refF, dtype: 'q4' }), ids, b, l);
  assertClose(gl.parallel, cl.parallel, 'default: parallel', 1e-4, 1e-4);
  assertClose(gl.steps, cl.steps, 'default: recurrent (fused step)', 1e-4, 1e-4);
});
