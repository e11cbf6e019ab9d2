import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModel, DEFAULT_MODEL_DIR } from '../../src/node/load.js';
import { loadHybridModel } from '../../src/models/node/load-checkpoint.js';
import { Model } from '../../src/model.js';
import { FAMILY } from '../helpers/fixtures.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { startServer } from './helpers.js';

// The server on the WebGPU backend with a hybrid (Falcon-H1: RoPE attention beside Mamba-2 in every
// layer): concurrent requests of different lengths share batched steps at their own positions (the
// batch's KV caches, counters and positions on the device, grown past a capacity) and give the tokens
// of the library on the CPU.

after(disposeGpu);
const base = await loadModel(DEFAULT_MODEL_DIR); // (its tokenizer: the fixture's ids 0..100 as text)

test('serve a hybrid on WebGPU: concurrent greedy requests at different lengths equal the library', async (t) => {
  const backend = await requireAdapter(t);
  if (!backend) return;
  const gpu = await loadHybridModel(join(FAMILY, 'falcon-h1'), { backend });
  const sizes: number[] = [];
  const stepIds = gpu.stepIds.bind(gpu);
  gpu.stepIds = (tokens, state) => {
    sizes.push(tokens.length);
    return stepIds(tokens, state);
  };
  const s = await startServer(new Model(gpu, base.tokenizer, 'falcon-h1'), { prefillChunk: 8, maxRunning: 4 });
  const cpu = new Model(await loadHybridModel(join(FAMILY, 'falcon-h1')), base.tokenizer, 'falcon-h1');
  try {
    const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 37 + seed * 11) % 97));
    const prompts = [ids(3, 1), ids(14, 2), ids(11, 3)]; // row 1 passes the caches' 16 positions
    const lens = [6, 4, 8];
    const one = (prompt: number[], n: number) => {
      const body = { model: s.modelId, prompt, max_tokens: n, temperature: 0, ignore_eos: true } as const;
      return s.client.completions.create(body);
    };
    const concurrent = (await Promise.all(prompts.map((p, i) => one(p, lens[i])))).map((r) => r.choices[0].text);
    assert.ok(Math.max(...sizes) > 1, `the decode steps ran ${Math.max(...sizes)} rows at most`);
    for (const [i, p] of prompts.entries()) {
      const [ref] = await cpu.generateAll(p, { greedy: true, maxNewTokens: lens[i], ignoreEos: true });
      assert.equal(concurrent[i], ref!.text, `prompt ${i}`);
    }
  } finally {
    await s.stop();
  }
});
