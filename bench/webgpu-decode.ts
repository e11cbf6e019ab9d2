import { deviceTokens } from '../src/generate/device-loop.js';
import { GREEDY } from '../src/backend/sampling.js';
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
 * Batch-1 decode throughput on WebGPU with random weights of real Mamba-1 shapes: the device loop
 * (step -> GPU sampling -> next step reads the id from the GPU; only the ids come back), greedy.
 *   node dist/bench/webgpu-decode.js [options] (options and defaults: --help; one table in src/cli/bench-suites.ts)
 * Prints tokens/s and the GPU time per token (timestamp queries) by kernel. --fuse-norm picks whether
 * the block's RMSNorm and residual add are fused into the Mamba step's products (WebGpuBackendOptions
 * fuseNorm; default on); `on,off` measures both on the same model, one after the other (A/B).
 */
const a = benchArgs('webgpu-decode');
const models = choiceList(a.models, 'models', Object.keys(SHAPES));
const dtypes = choiceList(a.dtypes, 'dtypes', ['f32', 'f16', 'bf16', 'q4'] as const);
const { seconds, warmup: warm, lookahead } = a;
const fusions = a['fuse-norm'].split(',').map((f) => {
  if (f !== 'on' && f !== 'off') throw new Error(`--fuse-norm takes on, off or on,off; got ${f}`);
  return f === 'on';
});

const bk = await backend();
const results: Record<string, unknown>[] = [];
try {
  for (const name of models) {
    const s = SHAPES[name];
    for (const dtype of dtypes) {
      const model = randomModel(bk, mambaConfig(s.d, s.layers, a.vocab), dtype);
      const state = model.initState(1);
      const prompt = bk.upload(Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), [1, 8], 'i32');
      for (const fuseNorm of fusions) {
        bk.options.fuseNorm = fuseNorm;
        const run = async (n: number): Promise<number> => {
          const logits = model.forward(prompt, { state, lastOnly: true });
          let got = 0;
          const t0 = performance.now();
          for await (const _ of deviceTokens(model, state, logits, { maxNewTokens: n, sampling: GREEDY, lookahead }))
            got++;
          const ms = performance.now() - t0;
          logits.dispose();
          return (got / ms) * 1000;
        };
        await warmUp(warm, async () => {
          await run(64);
        });
        // calibrate the token count to about `seconds`
        const rate0 = await run(128);
        const n = Math.max(128, Math.round(rate0 * seconds));
        const rates = [await run(n), await run(n)];
        const tokS = Math.max(...rates);
        // GPU time per token by kernel (one pass per dispatch: adds a little time, shows the split)
        let perToken: { kernel: string; ms: number; share: number; dispatches: number }[] = [];
        let gpuMs = NaN;
        if (bk.g.features.has('timestamp-query')) {
          const logits = model.forward(prompt, { state, lastOnly: true });
          const out = bk.alloc([1], 'i32');
          bk.sample({ out, logits, params: GREEDY, step: 0 });
          await bk.sync();
          bk.startProfile();
          const steps = 32;
          for (let i = 0; i < steps; i++) {
            const lg = model.step(out, state);
            bk.sample({ out, logits: lg, params: GREEDY, step: i });
          }
          const prof = await bk.stopProfile();
          perToken = byKernel(prof).map((k) => ({ ...k, ms: k.ms / steps, dispatches: k.dispatches / steps }));
          gpuMs = perToken.reduce((a, k) => a + k.ms, 0);
        }
        const weightsGB = (model.parameterCount() * (dtype === 'f32' ? 4 : dtype === 'q4' ? 0.5625 : 2)) / 1e9;
        const r = {
          model: name,
          dtype,
          fuseNorm,
          tokensPerSecond: tokS,
          runs: rates,
          tokens: n,
          gpuMsPerToken: gpuMs,
          weightsGB,
          dispatchesPerToken: perToken.reduce((a, k) => a + k.dispatches, 0),
          perToken,
        };
        results.push(r);
        console.log(
          `${name} ${dtype} (norm ${fuseNorm ? 'fused' : 'separate'}): ${tokS.toFixed(1)} tok/s (runs ${rates.map((x) => x.toFixed(1)).join(', ')}), GPU ${gpuMs.toFixed(3)} ms/token in ${r.dispatchesPerToken} dispatches`,
        );
        console.log(
          table([
            ['kernel', 'ms/token', 'share', 'dispatches'],
            ...perToken.map((k) => [k.kernel, k.ms.toFixed(4), (100 * k.share).toFixed(1) + '%', k.dispatches]),
          ]),
        );
      }
      state.dispose();
      disposeModel(model);
      await bk.sync();
    }
  }
  console.log(
    table([
      ['model', 'weights', 'norm', 'tok/s', 'GPU ms/token', 'anchor (CUDA graphs, f32)'],
      ...results.map((r) => [
        r.model as string,
        r.dtype as string,
        r.fuseNorm ? 'fused' : 'separate',
        (r.tokensPerSecond as number).toFixed(1),
        (r.gpuMsPerToken as number).toFixed(3),
        r.model === '130m' ? 914 : r.model === '1.4b' ? 297 : '-',
      ]),
    ]),
  );
  console.log('wrote', writeResult(a.name, { machine: machine(bk), results }, a.out));
} finally {
  bk.dispose();
}
