import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, DEFAULT_MODEL_DIR } from '../../src/node/load.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { startServer } from './helpers.js';

// The server on the WebGPU backend: batched steps and chunked prefill give the library's tokens.

after(disposeGpu);

test('serve on WebGPU: concurrent greedy requests (batched steps, chunked prefill) equal the library', async (t) => {
  const backend = await requireAdapter(t);
  if (!backend) return;
  const model = await loadModel(DEFAULT_MODEL_DIR, { backend });
  const s = await startServer(model, { prefillChunk: 8 });
  try {
    // short: SwiftShader takes seconds a step on a busy CI machine
    const prompts = ['The dog', 'Once upon a time, there was a little girl named Lily.'];
    const lens = [3, 5];
    const one = (p: string, n: number) => {
      // ignore_eos: an extension, passed through by the client (a variable skips the literal's field check)
      const body = { model: s.modelId, prompt: p, max_tokens: n, temperature: 0, ignore_eos: true } as const;
      return s.client.completions.create(body);
    };
    const concurrent = (await Promise.all(prompts.map((p, i) => one(p, lens[i])))).map((r) => r.choices[0].text);
    for (const [i, p] of prompts.entries()) {
      const [ref] = await model.generateAll(p, { greedy: true, maxNewTokens: lens[i], ignoreEos: true });
      assert.equal(concurrent[i], ref!.text, `prompt ${i}`);
    }
  } finally {
    await s.stop();
  }
});
