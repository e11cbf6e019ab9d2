import { randomArray } from './compare.js';

/**
 * Inputs for the quantisers' tests (reference/quantize-fast.ts, wasm/quantize.wat) against the references:
 * widths under a block, with a padded last block, and whole; random values at several scales; and
 * hand-made blocks.
 */
export interface QuantCase {
  name: string;
  rows: number;
  cols: number;
  v: Float32Array;
}

export const QUANT_SHAPES: readonly [number, number][] = [
  [1, 1],
  [3, 31],
  [2, 32],
  [5, 33],
  [4, 64],
  [3, 100],
  [7, 129],
];

/**
 * Hand-made blocks of 32: zeros, -0, a tie in |w| of both signs (the first wins, sign kept), grid points and
 * halves, subnormals (q8's 1 / d overflows), `top` (the largest weight: q4's limit 524032 by default; less
 * for sources that cannot hold it), values near 1/2. `top` to pass where the values go through f16/bf16.
 */
export function specialBlocks(top = 524032): Float32Array {
  return Float32Array.from([
    ...new Array(32).fill(0),
    ...Array.from({ length: 32 }, (_, i) => (i % 2 ? -0 : 0)),
    ...Array.from({ length: 32 }, (_, i) => (i === 3 ? -2 : i === 9 ? 2 : (i - 16) / 8)),
    ...Array.from({ length: 32 }, (_, i) => (i === 0 ? 8 : i - 15.5)),
    ...Array.from({ length: 32 }, (_, i) => (i - 16) * 1e-40),
    ...Array.from({ length: 32 }, (_, i) => (i === 5 ? top : -i * 1000)),
    ...Array.from({ length: 32 }, (_, i) => (i === 7 ? -127 : (i - 16) * 7.9375)),
    ...Array.from({ length: 32 }, (_, i) => (i === 30 ? -0.49999997 : 0.49999997 * ((i % 3) - 1))),
  ]);
}

/** Random matrices of every shape at several scales, then the special blocks (whole and at an odd width). */
export function quantCases(shapes: readonly [number, number][] = QUANT_SHAPES, top?: number): QuantCase[] {
  const out: QuantCase[] = [];
  for (const [rows, cols] of shapes)
    for (const [lo, hi, seed] of [
      [-1, 1, 1],
      [-3e4, 3e4, 2],
      [-1e-6, 1e-6, 3],
      [0, 5, 4],
    ] as const)
      out.push({
        name: `random ${rows}x${cols} in [${lo}, ${hi}]`,
        rows,
        cols,
        v: randomArray(rows * cols, seed, lo, hi),
      });
  const sp = specialBlocks(top);
  out.push({ name: 'special blocks', rows: sp.length / 32, cols: 32, v: sp });
  out.push({ name: 'special blocks, one row, odd width', rows: 1, cols: sp.length - 7, v: sp.slice(7) });
  return out;
}
