/**
 * Runs inside headless Chromium (browser.test.ts serves the repository and imports this module in a
 * page): builds the fixture model from the library's ES modules on the page's own WebGPU
 * (`navigator.gpu`), and returns its logits and a short greedy generation done on the GPU.
 * Browser-only code: no Node imports here or in anything it imports.
 */
import { createWebGpuBackend } from '../../src/backend/webgpu/create.js';
import { deviceTokens } from '../../src/generate/device-loop.js';
import { GREEDY } from '../../src/backend/sampling.js';
import { buildModel } from '../../src/models/build.js';
import { parseConfig } from '../../src/models/config.js';
import { memorySource } from '../../src/io/byte-source.js';
import { openSafetensors } from '../../src/io/safetensors.js';

export interface PageResult {
  adapter: string;
  logits: number[];
  generated: number[][];
}

export async function runFixture(
  dir: string,
  ids: number[],
  b: number,
  l: number,
  newTokens: number,
): Promise<PageResult> {
  const bk = await createWebGpuBackend();
  try {
    const cfg = parseConfig(await (await fetch(`${dir}/config.json`)).json(), `${dir}/config.json`);
    const bytes = new Uint8Array(await (await fetch(`${dir}/model.safetensors`)).arrayBuffer());
    const model = await buildModel(
      cfg,
      await openSafetensors(memorySource(bytes, `${dir}/model.safetensors`)),
      bk,
      'f32',
    );
    const idT = bk.upload(Int32Array.from(ids), [b, l], 'i32');
    const logits = await model.forward(idT).readFloat();
    const state = model.initState(b);
    const last = model.forward(idT, { state, lastOnly: true });
    const generated: number[][] = Array.from({ length: b }, () => []);
    for await (const got of deviceTokens(model, state, last, { maxNewTokens: newTokens, sampling: GREEDY }))
      got.forEach((id, i) => generated[i].push(id));
    const info = bk.g.adapterInfo;
    return {
      adapter: `${info.vendor} ${info.architecture} ${info.description}`.trim(),
      logits: Array.from(logits),
      generated,
    };
  } finally {
    bk.dispose();
  }
}
