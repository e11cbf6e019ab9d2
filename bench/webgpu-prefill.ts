import { benchArgs } from '../src/cli/bench-suites.js';
import { choiceList } from '../src/cli/args.js';
import {
  backend,
  byKernel,
  disposeModel,
  machine,
  mambaConfig,
  randomModel,
  SHAPES,
  table,
  warmUp,
  writeResult,
} from './webgpu-common.js';

/**
 * Prefill throughput on WebGPU: the parallel form over a prompt of `--tokens`, batch
 * 1, logits of the last position only (what generation needs), random weights of real shapes.
 *   node dist/bench/webgpu-prefill.js [options] (options and defaults: --help; one table in src/cli/bench-suites.ts)
 * Prints tokens/s and the share of GPU time per kernel (timestamp queries over one prefill).
 */
const a = benchArgs('webgpu-prefill');
const models = choiceList(a.models, 'models', Object.keys(SHAPES));
const dtypes = choiceList(a.dtypes, 'dtypes', ['f32', 'f16', 'bf16', 'q4'] as const);
const { tokens, reps } = a;

const bk = await backend();
const results: Record<string, unknown>[] = [];
try {
  for (const name of models) {
    const s = SHAPES[name];
    for (const dtype of dtypes) {
      const model = randomModel(bk, mambaConfig(s.d, s.layers, a.vocab), dtype);
      const ids = new Int32Array(tokens);
      for (let i = 0; i < tokens; i++) ids[i] = (i * 7919) % model.vocabSize;
      const idT = bk.upload(ids, [1, tokens], 'i32');
      const once = async (): Promise<void> => {
        model.forward(idT, { lastOnly: true }).dispose();
        await bk.sync();
      };
      await warmUp(1, once);
      const times: number[] = [];
      for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        await once();
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      const ms = times[Math.floor(times.length / 2)];
      let kernels: ReturnType<typeof byKernel> = [];
      let gpuMs = NaN;
      if (bk.g.features.has('timestamp-query')) {
        bk.startProfile();
        model.forward(idT, { lastOnly: true }).dispose();
        kernels = byKernel(await bk.stopProfile());
        gpuMs = kernels.reduce((a, k) => a + k.ms, 0);
      }
      const r = {
        model: name,
        dtype,
        tokens,
        ms,
        tokensPerSecond: (tokens / ms) * 1000,
        runsMs: times,
        gpuMs,
        kernels,
      };
      results.push(r);
      console.log(
        `${name} ${dtype}: ${tokens} tokens in ${ms.toFixed(2)} ms = ${r.tokensPerSecond.toFixed(0)} tok/s (GPU time ${gpuMs.toFixed(2)} ms)`,
      );
      console.log(
        table([
          ['kernel', 'ms', 'share', 'dispatches'],
          ...kernels.map((k) => [k.kernel, k.ms.toFixed(3), (100 * k.share).toFixed(1) + '%', k.dispatches]),
        ]),
      );
      idT.dispose();
      disposeModel(model);
      await bk.sync();
    }
  }
  console.log(
    table([
      ['model', 'weights', 'tokens', 'ms', 'tok/s'],
      ...results.map((r) => [
        r.model as string,
        r.dtype as string,
        r.tokens as number,
        (r.ms as number).toFixed(2),
        (r.tokensPerSecond as number).toFixed(0),
      ]),
    ]),
  );
  console.log('wrote', writeResult(a.name, { machine: machine(bk), results }, a.out));
} finally {
  bk.dispose();
}
