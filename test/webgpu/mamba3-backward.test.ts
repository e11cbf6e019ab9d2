import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { Mamba3Dims } from '../../src/backend/contract/mamba3.js';
import { missingMixerKernels } from '../../src/backend/contract/mixers.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { mamba3BackwardScratch } from '../../src/backend/webgpu/kernels/mamba3-scan-backward.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { assertGradientsClose, mamba3BackwardCase, mamba3Dims } from './mamba3-case.js';

/**
 * Mamba-3's WebGPU backward (kernels/mamba3-scan-backward.wgsl) against the CPU reference
 * (cpu/reference/mamba3-scan-backward.ts, f64 inside), every gradient of the contract, on odd sizes:
 * SISO and MIMO (ranks 2 and 4), d_state not a multiple of 4, lengths that end mid-chunk (1, 7, 77;
 * the kernel's chunks are ⌈√l⌉ long), batch 2, rope fraction 0.5 and 1 (both pair layouts), the
 * output norm on and off, several heads and groups, proj and dL/dy as strided views.
 * Tolerance: see TOL below.
 */
after(disposeGpu);

test('webgpu has every mixer kernel, mamba3ScanBackward included', async (t: TestContext) => {
  const gb = await requireAdapter(t);
  if (!gb) return;
  assert.deepEqual(missingMixerKernels(gb), []);
});

/** rope fraction f of d_state n: S = ⌊n·f⌋ made even, halved (mamba3.py). */
const dims = mamba3Dims;

const CASES: [string, Mamba3Dims, number, number, boolean, boolean?][] = [
  // label, dims, b, l, output norm, sequences in slices of one (a storage binding that holds one sequence's scratch)
  ['SISO, n 6, rope 0.5, 4 heads in 2 groups, l 7', dims(4, 5, 6, 2, 1, 0.5), 2, 7, false],
  ['SISO, n 10, rope 1, norm, p 70, l 77', dims(3, 70, 10, 1, 1, 1), 2, 77, true],
  ['SISO, n 12, rope 0.5, norm, l 1', dims(2, 4, 12, 1, 1, 0.5), 2, 1, true],
  ['MIMO 2, n 10, rope 1, norm, 4 heads in 2 groups, l 77', dims(4, 6, 10, 2, 2, 1), 2, 77, true],
  ['MIMO 4, n 14, rope 0.5, 3 heads, l 7', dims(3, 9, 14, 1, 4, 0.5), 2, 7, false],
  ['MIMO 4, n 128, p 64, rope 0.5 (the official size), norm, l 5', dims(2, 64, 128, 1, 4, 0.5), 1, 5, true],
  ['MIMO 2, n 8, 2 groups, batch 3 in slices of one sequence, l 9', dims(4, 3, 8, 2, 2, 1), 3, 9, true, true],
];

/**
 * Each element within RTOL of the CPU's, plus ATOL times a scale: the larger of the gradient's own largest
 * magnitude and dProj's (the per-token gradients every shared one is a sum of). The kernel sums in f32
 * what the reference sums in f64 — over p·n state elements per token, over the tokens for the angles
 * (every θ_t feeds every later token) and the parameters, over sequences and heads — and some elements
 * are small differences of large terms (with l = 1 the rotation's share of dΔ cancels exactly: k·q does
 * not change when both turn by θ), so they carry the terms' f32 rounding, not their own.
 */
const RTOL = 1e-5,
  ATOL = 1e-5;

for (const [label, d, b, l, norm, sliced] of CASES) {
  test(`mamba3ScanBackward on WebGPU matches the CPU reference: ${label}`, async (t: TestContext) => {
    const gb = await requireAdapter(t);
    if (!gb) return;
    const args = mamba3BackwardCase(gb, d, b, l, norm, 300);
    const c = args(cpu(), 'c'),
      x = args(gb, 'g');
    cpu().mamba3ScanBackward(c);
    const limits = gb.g.limits as { maxStorageBufferBindingSize: number };
    const was = limits.maxStorageBufferBindingSize;
    if (sliced) limits.maxStorageBufferBindingSize = 4 * mamba3BackwardScratch(d, l).perSequence;
    try {
      gb.mamba3ScanBackward(x);
    } finally {
      limits.maxStorageBufferBindingSize = was;
    }
    await assertGradientsClose(t, label, c, x, RTOL, ATOL);
  });
}
