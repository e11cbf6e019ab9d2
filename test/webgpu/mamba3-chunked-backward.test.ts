import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { backward } from '../../src/autograd/backward.js';
import type { Backend } from '../../src/backend/backend.js';
import type { Mamba3Dims } from '../../src/backend/contract/mamba3.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import {
  mamba3BackwardTakesChunked,
  mamba3ChunkedBackwardScratch,
} from '../../src/backend/webgpu/kernels/mamba3-chunked-backward.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import * as F from '../../src/ops/ops.js';
import { readExpected, ROOT } from '../helpers/fixtures.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { assertGradientsClose, mamba3BackwardCase, mamba3Dims, withOptions } from './mamba3-case.js';

/**
 * Mamba-3's chunked backward on WebGPU (kernels/mamba3-chunked-backward.wgsl around Mamba-2's SSD backward)
 * against the CPU reference backward (cpu/reference/mamba3-scan-backward.ts), every gradient of the
 * contract (proj's columns z, x, B, C, Δ, A, λ, angles; dt_bias, the B/C norms and biases, D, the output
 * norm's weight), with `ssdPath: 'chunked'` forced, on odd sizes: l = 1, l not a multiple of the chunk,
 * several chunks, rope fraction 0.5 and 1 (both rotation layouts), the output norm on and off, groups,
 * batch 2, proj and dL/dy as strided views; MIMO ranks 2 and 4 (mimo_x, _z, _o's gradients too), l = 1 and
 * sub-token sequences that end mid-chunk. Then one training step of the Mamba-3 fixtures' models with every
 * scan chunked.
 */
after(disposeGpu);

const dims = mamba3Dims;

const CASES: [string, Mamba3Dims, number, number, boolean, number][] = [
  // label, dims, b, l, output norm, chunk
  ['SISO, l 1, n 12, rope 0.5, norm', dims(2, 4, 12, 1, 1, 0.5), 2, 1, true, 4],
  ['SISO, l 7 (chunk 4), n 6, rope 0.5, 4 heads in 2 groups', dims(4, 5, 6, 2, 1, 0.5), 2, 7, false, 4],
  ['SISO, l 77 (chunk 16: 5 chunks), n 10, rope 1, norm, p 70', dims(3, 70, 10, 1, 1, 1), 2, 77, true, 16],
  ['SISO, l 40 (default chunk), n 16, rope 0.25, halves, 2 groups', dims(4, 8, 16, 2, 1, 0.25, true), 1, 40, false, 0],
  ['SISO, l 33 (chunk 8), n 64, p 64, rope 0.5, norm', dims(2, 64, 64, 1, 1, 0.5), 1, 33, true, 8],
  [
    'MIMO 2, l 9 (45 sub-tokens, chunk 4), n 10, rope 1, norm, 4 heads in 2 groups',
    dims(4, 6, 10, 2, 2, 1),
    2,
    9,
    true,
    4,
  ],
  ['MIMO 4, l 7 (63 sub-tokens, chunk 16), n 14, rope 0.5', dims(3, 9, 14, 1, 4, 0.5), 2, 7, false, 16],
  ['MIMO 2, l 1, n 8, rope 0.5, norm', dims(2, 5, 8, 1, 2, 0.5), 2, 1, true, 4],
  ['MIMO 4, n 128, p 64, rope 0.5 (the official size), norm, l 5', dims(2, 64, 128, 1, 4, 0.5), 1, 5, true, 0],
  ['SISO, l 200 (default chunk: 4 chunks), n 16, rope 0.5, norm, batch 2', dims(2, 8, 16, 1, 1, 0.5), 2, 200, true, 0],
  ['MIMO 2, l 40 (200 sub-tokens, default chunk), n 16, rope 1, norm', dims(2, 8, 16, 1, 2, 1), 2, 40, true, 0],
];

/** Each element within RTOL of the CPU's plus ATOL times the larger of the gradient's and dProj's largest magnitude. */
const RTOL = 1e-4,
  ATOL = 1e-4;

for (const [label, d, b, l, norm, chunk] of CASES) {
  test(`mamba3ScanBackward on WebGPU, chunked path forced, matches the CPU reference: ${label}`, async (t: TestContext) => {
    const gb = await requireAdapter(t);
    if (!gb) return;
    const args = mamba3BackwardCase(gb, d, b, l, norm, 700);
    const c = args(cpu(), 'c'),
      x = args(gb, 'g');
    cpu().mamba3ScanBackward(c);
    await withOptions(gb, { ssdPath: 'chunked', ssdChunk: chunk }, async () => {
      assert.equal(mamba3BackwardTakesChunked(gb, d, b, l, norm), true, 'the chunked backward is taken');
      gb.mamba3ScanBackward(x);
    });
    await assertGradientsClose(t, label, c, x, RTOL, ATOL);
  });
}

test('auto takes the chunked backward past 32 tokens, while its scratch fits a binding', async (t: TestContext) => {
  const gb = await requireAdapter(t);
  if (!gb) return;
  await withOptions(gb, { ssdPath: 'auto', ssdChunk: 0 }, async () => {
    assert.equal(mamba3BackwardTakesChunked(gb, dims(2, 8, 16, 1, 1, 0.5), 1, 32), false);
    assert.equal(mamba3BackwardTakesChunked(gb, dims(2, 8, 16, 1, 1, 0.5), 1, 33), true);
    assert.equal(mamba3BackwardTakesChunked(gb, dims(2, 8, 16, 1, 2, 0.5), 1, 2048), true);
  });
  await withOptions(gb, { ssdPath: 'sequential' }, async () => {
    assert.equal(mamba3BackwardTakesChunked(gb, dims(2, 8, 16, 1, 1, 0.5), 1, 2048), false);
  });
  // a scratch larger than one storage binding: the token scan's backward (it slices the batch)
  const d = dims(2, 8, 16, 1, 1, 0.5);
  const limits = gb.g.limits as { maxStorageBufferBindingSize: number };
  const was = limits.maxStorageBufferBindingSize;
  await withOptions(gb, { ssdPath: 'chunked' }, async () => {
    try {
      limits.maxStorageBufferBindingSize = 4 * mamba3ChunkedBackwardScratch(d, 2, 64, true);
      assert.equal(mamba3BackwardTakesChunked(gb, d, 2, 64, true), true);
      limits.maxStorageBufferBindingSize -= 4;
      assert.equal(mamba3BackwardTakesChunked(gb, d, 2, 64, true), false);
    } finally {
      limits.maxStorageBufferBindingSize = was;
    }
  });
});

// One training step of the Mamba-3 fixtures' models (as train-mamba3.test.ts) with every scan chunked
// (chunk 4: the fixtures' prompts span several chunks): loss and every parameter's gradient against the CPU.
// (Not the weights after AdamW: see docs/mamba3.md, "The chunked backward", on gradients that are zero by
// structure on the CPU and f32 residues here.)
const DIR = join(ROOT, 'fixtures', 'mamba3');
for (const name of ['siso', 'mimo-norm'])
  test(`the Mamba-3 ${name} model's gradients on WebGPU with the chunked path forced match the CPU`, async (t) => {
    const gpu = await requireAdapter(t);
    if (!gpu) return;
    const exp = await readExpected(join('..', 'mamba3', name));
    const [b, l] = [exp.ids.length, exp.ids[0].length];
    const ids = Int32Array.from(exp.ids.flat());
    const targets = new Int32Array(b * l);
    for (let i = 0; i < b; i++) for (let s = 0; s < l; s++) targets[i * l + s] = s + 1 < l ? ids[i * l + s + 1] : -1;
    const sides: { loss: number; grads: Map<string, Float32Array> }[] = [];
    for (const bk of [cpu(), gpu] as Backend[]) {
      const run = async () => {
        const model = await loadLanguageModel(join(DIR, name), { backend: bk, dtype: 'f32' });
        const params = model.parameters();
        for (const p of params.values()) p.requiresGrad = true;
        const loss = F.crossEntropy(model.forward(bk.upload(ids, [b, l], 'i32')), bk.upload(targets, [b, l], 'i32'));
        backward(loss);
        const grads = new Map<string, Float32Array>();
        for (const [k, p] of params) {
          assert.ok(p.grad, `${name} on ${bk.name}: ${k} has no gradient`);
          grads.set(k, await p.grad.readFloat());
        }
        sides.push({ loss: (await loss.readFloat())[0], grads });
      };
      if (bk === gpu) await withOptions(gpu, { ssdPath: 'chunked', ssdChunk: 4 }, run);
      else await run();
    }
    const [c, w] = sides;
    assert.ok(Math.abs(c.loss - w.loss) < 1e-5, `loss ${w.loss} vs cpu ${c.loss}`);
    let worst = 0,
      worstName = '';
    for (const [k, gc] of c.grads) {
      const gw = w.grads.get(k)!;
      assert.equal(gw.length, gc.length, k);
      for (let i = 0; i < gc.length; i++) {
        const e = Math.abs(gc[i] - gw[i]);
        if (e > worst) [worst, worstName] = [e, k];
      }
    }
    t.diagnostic(`${name} (l ${l}, chunked): worst gradient difference ${worst.toExponential(2)} (${worstName})`);
    assert.ok(c.grads.size > 0);
    assert.ok(worst < 1e-4, `gradients differ by up to ${worst} (${worstName})`);
  });
