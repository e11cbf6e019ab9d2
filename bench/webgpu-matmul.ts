/**
 * The tiled f32 matrix product on WebGPU, by form: the 128 x 128 tile (or with --tile 64 the 64 x 64
 * tile) in its loop form (matmul.wgsl `main`, `matmulRegisters: false`) against the named-register
 * form with prefetched k slices (`wide` / `narrow`, the default), on the products of training and prefilling a mamba-130m-shaped model at length 2048
 * (m = 2048 tokens): in_proj, out_proj and lm_head forward (x W^T), their input gradients (dY W) and
 * weight gradients (dY^T X). GPU time from timestamp queries (median of --reps), TFLOP/s = 2 m q p / t,
 * and the largest difference between the two forms' outputs.
 *   node dist/bench/webgpu-matmul.js [--reps 10] [--out DIR] [--divide 1 (every dimension divided by it)]
 *     [--tile 128 (or 64)] [--rounds 1 (the forms alternate, loop form first; medians over rounds)]
 *     [--compare forms (loop form vs registers at --tile) | tiles (the 64 x 64 tile vs the 128 x 128 one,
 *      both in registers, with the tile the backend picks by itself: where the threshold should sit)]
 *     [--products core (the six above) | train (all fifteen products of a mamba-130m training step,
 *      x_proj and dt_proj's narrow ones included)]
 * Writes webgpu-matmul.json (machine, command, rows) into --out (default bench/results).
 */
import type { Tensor } from '../src/tensor/tensor.js';
import { backend, machine, random, table, timeCalls, writeResult } from './webgpu-common.js';
import { argvOptions } from './argv.js';

const arg = argvOptions(['reps', 'out', 'divide', 'tile', 'rounds', 'compare', 'products']);
const reps = Number(arg('reps', '10'));
/** Every dimension divided by this (a quick run on a CPU adapter). */
const divide = Number(arg('divide', '1'));
const out = process.argv.includes('--out') ? arg('out', '') : undefined;
const tile = Number(arg('tile', '128'));
if (tile !== 64 && tile !== 128) throw new Error(`--tile must be 64 or 128, got ${tile}`);
/** Times each form is measured per product, alternating (A B A B ...), so that drift falls on both. */
const rounds = Number(arg('rounds', '1'));
const compare = arg('compare', 'forms');
if (compare !== 'forms' && compare !== 'tiles') throw new Error(`--compare must be forms or tiles, got ${compare}`);
const productSet = arg('products', 'core');
if (productSet !== 'core' && productSet !== 'train')
  throw new Error(`--products must be core or train, got ${productSet}`);
const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** [name, m, q, p, transA, transB]: out (m, p) = op(a) (m, q) · op(b) (q, p). */
const CORE: [string, number, number, number, boolean, boolean][] = [
  ['in_proj x W^T', 2048, 768, 3072, false, true],
  ['out_proj x W^T', 2048, 1536, 768, false, true],
  ['lm_head x E^T', 2048, 768, 50280, false, true],
  ['in_proj dY W', 2048, 3072, 768, false, false],
  ['in_proj dW = dY^T X', 3072, 2048, 768, true, false],
  ['lm_head dW = dY^T X', 50280, 2048, 768, true, false],
];
/** Every product of a mamba-130m training step (d 768, e 1536, dt_rank 48, d_state 16, 2048 tokens). */
const TRAIN: [string, number, number, number, boolean, boolean][] = [];
for (const [w, inF, outF] of [
  ['in_proj', 768, 3072],
  ['x_proj', 1536, 80],
  ['dt_proj', 48, 1536],
  ['out_proj', 1536, 768],
  ['lm_head', 768, 50280],
] as const) {
  TRAIN.push([`${w} x W^T`, 2048, inF, outF, false, true]);
  TRAIN.push([`${w} dY W`, 2048, outF, inF, false, false]);
  TRAIN.push([`${w} dW = dY^T X`, outF, 2048, inF, true, false]);
}
const PRODUCTS = productSet === 'train' ? TRAIN : CORE;

const forms =
  compare === 'forms'
    ? [
        { name: 'loop form', bk: await backend({ matmulTile: tile, matmulRegisters: false }) },
        { name: 'registers', bk: await backend({ matmulTile: tile, matmulRegisters: true }) },
      ]
    : [
        { name: 'tile 64', bk: await backend({ matmulTile: 64 }) },
        { name: 'tile 128', bk: await backend({ matmulTile: 128 }) },
      ];
/** The backend left to choose (--compare tiles): which tile its threshold picks. */
const auto = compare === 'tiles' ? await backend({}) : null;
const rows: (string | number)[][] = [
  [
    'product',
    '(m, q, p)',
    ...forms.map((f) => `${f.name} ms`),
    ...forms.map((f) => `${f.name} TFLOP/s`),
    'speed-up',
    'max |diff|',
    ...(auto ? ['picked'] : []),
  ],
];
const results: Record<string, unknown>[] = [];
try {
  for (const [name, m0, q0, p0, transA, transB] of PRODUCTS) {
    const [m, q, p] = [m0, q0, p0].map((x) => Math.ceil(x / divide));
    const outs: Float32Array[] = [];
    const operands = forms.map(({ bk }) => {
      const a = random(bk, transA ? [q, m] : [m, q], -1, 1, 1);
      const b = random(bk, transB ? [p, q] : [q, p], -1, 1, 2);
      const o: Tensor = bk.alloc([m, p]);
      bk.matmul(o, a, b, { transA, transB });
      return { a, b, o };
    });
    const times: number[][] = forms.map(() => []);
    for (let round = 0; round < rounds; round++)
      for (let f = 0; f < forms.length; f++) {
        const bk = forms[f].bk;
        const { a, b, o } = operands[f];
        const t = await timeCalls(
          bk,
          () => bk.matmul(o, a, b, { transA, transB }),
          (k) => k.startsWith('matmul'),
          reps,
        );
        times[f].push(Number.isFinite(t.gpuMs) ? t.gpuMs : t.wallMs);
      }
    const ms = times.map(median);
    for (const { a, b, o } of operands) {
      outs.push((await o.read()) as Float32Array);
      for (const x of [a, b, o]) x.dispose();
    }
    let diff = 0;
    for (let i = 0; i < outs[0].length; i++) diff = Math.max(diff, Math.abs(outs[0][i] - outs[1][i]));
    const tf = ms.map((x) => (2 * m * q * p) / (x * 1e9));
    let picked = '';
    if (auto) {
      const a = random(auto, transA ? [q, m] : [m, q], -1, 1, 1);
      const b = random(auto, transB ? [p, q] : [q, p], -1, 1, 2);
      const o = auto.alloc([m, p]);
      const t = await timeCalls(
        auto,
        () => auto.matmul(o, a, b, { transA, transB }),
        (k) => k.startsWith('matmul'),
        1,
      );
      picked = t.kernels.map((k) => k.kernel).join(' ') || '?';
      for (const x of [a, b, o]) x.dispose();
    }
    results.push({
      product: name,
      tile,
      m,
      q,
      p,
      transA,
      transB,
      ms: Object.fromEntries(forms.map((f, i) => [f.name, ms[i]])),
      tflops: tf,
      maxDiff: diff,
      ...(auto ? { picked } : {}),
    });
    rows.push([
      name,
      `(${m}, ${q}, ${p})`,
      ...ms.map((x) => x.toFixed(3)),
      ...tf.map((x) => x.toFixed(2)),
      (ms[0] / ms[1]).toFixed(2) + 'x',
      diff.toExponential(1),
      ...(auto ? [picked] : []),
    ]);
    console.log(rows[rows.length - 1].join('  '));
  }
  console.log(table(rows));
  console.log(
    'wrote',
    writeResult(
      'webgpu-matmul',
      {
        machine: machine(forms[0].bk),
        command: `node dist/bench/webgpu-matmul.js ${process.argv.slice(2).join(' ')}`.trim(),
        results,
      },
      out,
    ),
  );
} finally {
  for (const f of forms) f.bk.dispose();
  auto?.dispose();
}
