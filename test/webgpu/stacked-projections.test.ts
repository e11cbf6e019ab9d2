import { after, test } from 'node:test';
import { checkQuantizedStaysSeparate, checkStackedAttention, checkStackedMlp } from '../helpers/stacked-projections.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

/**
 * The hybrids' stacked projections on WebGPU (models/stack-rows.ts): one dispatch for [q; k; v] and one
 * for [gate; up] per step, the outputs of the separate products, the parameters unchanged; q4 left separate.
 */
after(disposeGpu);

for (const dtype of ['f32', 'f16', 'bf16'] as const)
  test(`stacked [q; k; v] and [gate; up] on WebGPU (${dtype}): one product each per step, the separate products' outputs`, async (t) => {
    const g = await requireAdapter(t);
    if (!g) return;
    for (const biased of [false, true]) {
      await checkStackedAttention(g, dtype, biased, 1e-5);
      await checkStackedMlp(g, dtype, biased, 1e-5);
    }
  });

test('q4 weights stay separate on WebGPU', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  checkQuantizedStaysSeparate(g, 'q4');
});
