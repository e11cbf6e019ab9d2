import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../../src/backend/backend.js';
import { memorySource } from '../../src/io/byte-source.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import type { TensorSource } from '../../src/io/tensor-source.js';
import { buildModel } from '../../src/models/build.js';
import { parseConfig } from '../../src/models/config.js';
import type { LanguageModel } from '../../src/models/lm.js';
import type { WeightDType } from '../../src/models/weights.js';
import { PARITY, ROOT } from './fixtures.js';

export { PARITY, ROOT };

/** A PyTorch parity fixture's model on any backend (weights read with the project's reader). */
export async function fixtureModel(
  name: string,
  backend: Backend,
  wdtype: WeightDType = 'auto',
): Promise<LanguageModel> {
  const dir = join(PARITY, name);
  const cfg = parseConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), `${name}/config.json`);
  const src = await openSafetensors(
    memorySource(new Uint8Array(readFileSync(join(dir, 'model.safetensors'))), `${name}/model.safetensors`),
  );
  try {
    return await buildModel(cfg, src, backend, wdtype);
  } finally {
    await src.close();
  }
}

/** A fixture's expected values as flat arrays: ids (b, l), logits (b, l, V), greedy (b, l + new). */
export interface FixtureExpected {
  ids: Int32Array;
  logits: Float32Array;
  greedy: Int32Array;
  b: number;
  l: number;
  V: number;
  total: number;
}

export async function readArray(src: TensorSource, name: string): Promise<Float32Array | Int32Array> {
  const e = src.entries.get(name);
  if (!e) throw new Error(`${src.description}: no tensor ${name}`);
  const b = await src.read(name);
  if (e.dtype === 'F32') return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  if (e.dtype === 'I32') return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  throw new Error(`${src.description}: ${name} is ${e.dtype}`);
}

export async function fixtureExpected(name: string): Promise<FixtureExpected> {
  const src = await openSafetensors(
    memorySource(
      new Uint8Array(readFileSync(join(PARITY, name, 'expected.safetensors'))),
      `${name}/expected.safetensors`,
    ),
  );
  const [b, l, V] = src.entries.get('logits')!.shape as [number, number, number];
  const total = src.entries.get('greedy')!.shape[1];
  const out = {
    ids: (await readArray(src, 'input_ids')) as Int32Array,
    logits: (await readArray(src, 'logits')) as Float32Array,
    greedy: (await readArray(src, 'greedy')) as Int32Array,
    b,
    l,
    V,
    total,
  };
  await src.close();
  return out;
}
