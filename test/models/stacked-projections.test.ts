import { test } from 'node:test';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { checkQuantizedStaysSeparate, checkStackedAttention, checkStackedMlp } from '../helpers/stacked-projections.js';

/**
 * The hybrids' stacked projections on the CPU (models/stack-rows.ts): one product for [q; k; v] and one
 * for [gate; up] per step, the logits of the separate products, the parameters unchanged; f32, f16, bf16
 * with and without biases; q8 and q4 left separate.
 */
const bk = cpu();

for (const dtype of ['f32', 'f16', 'bf16'] as const)
  for (const biased of [false, true]) {
    test(`stacked [q; k; v] on the CPU (${dtype}${biased ? ', biases' : ''}): one product per step, the separate products' outputs`, async () => {
      await checkStackedAttention(bk, dtype, biased, 1e-5);
    });
    test(`stacked [gate; up] on the CPU (${dtype}${biased ? ', biases' : ''}): one product per step, the separate products' outputs`, async () => {
      await checkStackedMlp(bk, dtype, biased, 1e-5);
    });
  }

test('q8 and q4 weights stay separate on the CPU (their scales follow all quants: a row block is no window)', () => {
  checkQuantizedStaysSeparate(bk, 'q8');
  checkQuantizedStaysSeparate(bk, 'q4');
});
