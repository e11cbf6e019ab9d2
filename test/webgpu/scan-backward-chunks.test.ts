import { after, test, type TestContext } from 'node:test';
import { checkScanBackward, type SelectiveScanBackwardArgs } from '../../src/backend/contract/training.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { selectiveScanBackward } from '../../src/backend/webgpu/kernels/scan-backward.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/webgpu-backend.js';
import { assertClose } from '../helpers/compare.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { both, type Pair } from './pair.js';
import { scanBackwardCase } from './scan-backward-case.js';

// The selective scan's gradient on WebGPU runs chunk by chunk in parallel (kernels/scan-backward.wgsl):
// each chunk's local state and adjoint, the carries across chunks both ways, then every chunk
// recomputed and walked backwards. Against the CPU reference (f64 sums there, f32 here), the cases
// that stress that: lengths just above, just below and at a multiple of the chunk, many chunks
// (chunks of 1), state sizes that leave lanes idle (5 of 8 lanes per channel, 20 of 32, 40 of 64) or
// put several states on a lane (130: 3 on each of 64 lanes, chunks of 10), chunks of 32 (where
// the adapter's workgroup memory allows; else 16), channels past one workgroup's block (70),
// h0 and dh0 across chunks. Tolerance as training.test.ts: 1e-5 relative, 1e-5 absolute.

after(disposeGpu);
const C = cpu();

async function check(t: TestContext, p: Pair, what: string): Promise<void> {
  const [g, c] = await both(p);
  let worst = 0;
  for (let i = 0; i < c.length; i++) worst = Math.max(worst, Math.abs(g[i] - c[i]) / Math.max(Math.abs(c[i]), 1e-3));
  t.diagnostic(`${what}: max relative error ${worst.toExponential(2)}`);
  assertClose(g, c, what, 1e-5, 1e-5);
}

type Case = readonly [number, number, number, number, number | undefined, boolean];

/** One case on both backends (`run` calls the WebGPU side), every gradient compared. */
async function runCase(
  t: TestContext,
  g: WebGpuBackend,
  [b, l, e, n, chunk, full]: Case,
  seed: number,
  run: (a: SelectiveScanBackwardArgs) => void,
): Promise<void> {
  const { args, grads } = scanBackwardCase(g, { b, l, e, n, chunk, full, softplus: full }, seed);
  C.selectiveScanBackward(args('c'));
  run(args('g'));
  const what = `selectiveScanBackward b=${b} l=${l} e=${e} n=${n} chunk=${chunk ?? 'default'}`;
  for (const [name, p] of Object.entries(grads)) if (p) await check(t, p, `${what} ${name}`);
}

test('selectiveScanBackward across chunks: lengths around chunk multiples, many chunks, odd state sizes', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 7000;
  // b, l, e, n, chunk (undefined: the launcher's default, 16), every optional input
  const cases: Case[] = [
    [1, 33, 5, 16, undefined, true],
    [2, 31, 6, 16, undefined, true],
    [1, 48, 70, 16, undefined, false],
    [1, 50, 4, 20, undefined, true],
    [2, 40, 9, 5, 8, true],
    [1, 19, 3, 40, undefined, true],
    [1, 66, 3, 16, 1, true],
    [2, 66, 9, 16, 32, true],
    [1, 23, 3, 130, undefined, true],
  ];
  for (const c of cases) {
    await runCase(t, g, c, seed, (a) => g.selectiveScanBackward(a));
    seed += 30;
  }
});

test('selectiveScanBackward in slices of 64 channels (the scratch cap forces them): dB, dC add up over slices', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  let seed = 7500;
  for (const c of [
    [2, 21, 150, 16, undefined, true],
    [1, 9, 130, 5, 4, false],
  ] as const) {
    // a 1-byte cap: every slice has the least, 64 channels (the last 22 or 2)
    await runCase(t, g, c, seed, (a) => selectiveScanBackward(g, a, checkScanBackward(a), 1));
    seed += 30;
  }
});
