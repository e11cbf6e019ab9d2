import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend, type CpuBackendOptions } from '../../src/backend/cpu/cpu-backend.js';
import type { LanguageModel } from '../../src/models/lm.js';
import type { WeightDType } from '../../src/models/weights.js';
import { maxAbsDiff } from '../helpers/fixtures.js';
import { fixtureExpected as readExpected, fixtureModel } from '../helpers/fixture-model.js';

/**
 * The whole model on the WebAssembly kernels against PyTorch (fixtures/parity/mamba1-tied, logits
 * of transformers' MambaForCausalLM): the parallel form (prefill) and token-by-token decode within
 * 1e-4, on 1 and 2 threads, with the model spread over several small memories (every kernel call
 * staging operands), and the TypeScript kernels on 2 threads. 16- and 8-bit weights: their logits
 * error is bounded (and printed for docs/cpu-performance.md).
 */
const backends: CpuBackend[] = [];
after(() => {
  for (const b of backends) b.dispose();
});

async function load(name: string, o: CpuBackendOptions, threads: number, dtype: WeightDType): Promise<LanguageModel> {
  const bk = new CpuBackend(o);
  backends.push(bk);
  if (threads > 1) await bk.useThreads(threads, { splitProductsFrom: 1 << 15 }); // (small products split too)
  return fixtureModel(name, bk, dtype);
}

/** Parallel-form logits (b, l, V) and step-by-step decode logits in the same layout. */
async function run(
  model: LanguageModel,
  ids: Int32Array,
  b: number,
  l: number,
): Promise<{ parallel: Float32Array; steps: Float32Array }> {
  const bk = model.backend;
  const parallel = await model.forward(bk.upload(ids, [b, l], 'i32')).readFloat();
  const V = model.vocabSize;
  const steps = new Float32Array(b * l * V);
  const state = model.initState(b);
  for (let t = 0; t < l; t++) {
    const col = Array.from({ length: b }, (_, i) => ids[i * l + t]);
    const logits = await model.stepIds(col, state).readFloat();
    for (let i = 0; i < b; i++) steps.set(logits.subarray(i * V, (i + 1) * V), (i * l + t) * V);
  }
  return { parallel, steps };
}

const SETUPS: [string, CpuBackendOptions, number][] = [
  ['wasm, 1 thread', { kernels: 'wasm' }, 1],
  ['wasm, 2 threads', { kernels: 'wasm' }, 2],
  [
    'wasm, 1 thread, 1 MiB memories (operands staged across memories)',
    { kernels: 'wasm', arenas: { arenaBytes: 1 << 20, reserveBytes: 256 << 10 } },
    1,
  ],
  ['wasm, unshared memories (pages without cross-origin isolation)', { kernels: 'wasm', arenas: { shared: false } }, 1],
  ['ts, 2 threads', { kernels: 'ts' }, 2],
];

for (const [what, o, threads] of SETUPS) {
  test(`mamba1-tied, ${what}: prefill and decode logits match transformers within 1e-4`, async () => {
    const exp = await readExpected('mamba1-tied');
    const model = await load('mamba1-tied', o, threads, 'f32');
    const { parallel, steps } = await run(model, exp.ids, exp.b, exp.l);
    const e1 = maxAbsDiff(parallel, exp.logits),
      e2 = maxAbsDiff(steps, exp.logits);
    assert.ok(e1 < 1e-4, `prefill: max abs error ${e1}`);
    assert.ok(e2 < 1e-4, `decode: max abs error ${e2}`);
  });
}

test('mamba1-f16 kept 16-bit in memory (auto), wasm on 2 threads: within 1e-4 (the expected logits use the same rounded weights)', async () => {
  const exp = await readExpected('mamba1-f16');
  const model = await load('mamba1-f16', { kernels: 'wasm' }, 2, 'auto');
  assert.equal(model.lmHead.dtype, 'f16');
  const { parallel, steps } = await run(model, exp.ids, exp.b, exp.l);
  assert.ok(maxAbsDiff(parallel, exp.logits) < 1e-4, `prefill ${maxAbsDiff(parallel, exp.logits)}`);
  assert.ok(maxAbsDiff(steps, exp.logits) < 1e-4, `decode ${maxAbsDiff(steps, exp.logits)}`);
});

// Weight formats on an f32 checkpoint: the logits move by the rounding of the weights. Bounds are
// loose multiples of what was measured (docs/cpu-performance.md); wasm and ts must agree closely.
const FORMAT_BOUNDS: [WeightDType, number][] = [
  ['f16', 1e-2],
  ['bf16', 1e-1],
  ['q8', 2e-1],
  ['q4', 4],
];
for (const [dtype, bound] of FORMAT_BOUNDS) {
  test(`mamba1-tied with ${dtype} weights: logits error bounded, wasm equal to the ts reference`, async () => {
    const exp = await readExpected('mamba1-tied');
    const wasm = await run(await load('mamba1-tied', { kernels: 'wasm' }, 1, dtype), exp.ids, exp.b, exp.l);
    const ref = await run(await load('mamba1-tied', { kernels: 'ts' }, 1, dtype), exp.ids, exp.b, exp.l);
    const err = maxAbsDiff(wasm.parallel, exp.logits),
      errStep = maxAbsDiff(wasm.steps, exp.logits);
    process.stdout.write(
      `# ${dtype}: logits max abs error vs f32 PyTorch: prefill ${err.toExponential(2)}, decode ${errStep.toExponential(2)}\n`,
    );
    assert.ok(err < bound && errStep < bound, `${dtype}: ${err}, ${errStep}`);
    assert.ok(
      maxAbsDiff(wasm.parallel, ref.parallel) < 1e-4,
      `wasm vs ts prefill ${maxAbsDiff(wasm.parallel, ref.parallel)}`,
    );
    // q8 and q4: the same int8 activations in both (reference/int8-activations.ts)
    assert.ok(maxAbsDiff(wasm.steps, ref.steps) < 1e-4, `wasm vs ts decode ${maxAbsDiff(wasm.steps, ref.steps)}`);
  });
}
