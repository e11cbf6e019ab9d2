import {
  arg,
  backend,
  byKernel,
  disposeModel,
  machine,
  mambaConfig,
  randomModel,
  type BenchWeights,
  SHAPES,
  table,
  warmUp,
  writeResult,
} from './webgpu-common.js';

/**
 * Prefill throughput on WebGPU: the parallel form over a prompt of `--tokens` (default 2048), batch
 * 1, logits of the last position only (what generation needs), random weights of real shapes.
 *   node dist/bench/webgpu-prefill.js [--models 130m,1.4b] [--dtypes f32,bf16,f16,q4] [--tokens 2048] [--reps 5]
 * Prints tokens/s and the share of GPU time per kernel (timestamp queries over one prefill).
 */
const models = arg('models', '130m,1.4b').split(',');
const dtypes = arg('dtypes', 'f32').split(',') as BenchWeights[];
const tokens = Number(arg('tokens', '2048'));
const reps = Number(arg('reps', '5'));

const bk = await backend();
const results: Record<string, unknown>[] = [];
try {
  for (const name of models) {
    const s = SHAPES[name];
    for (const dtype of dtypes) {
      const model = randomModel(bk, mambaConfig(s.d, s.layers, Number(arg('vocab', '50280'))), dtype);
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
  console.log('wrote', writeResult(arg('name', 'webgpu-prefill'), { machine: machine(bk), results }));
} finally {
  bk.dispose();
}
