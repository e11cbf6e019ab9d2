import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Backend } from '../../src/backend/backend.js';
import { buildMamba } from '../../src/models/build-mamba.js';
import { parseConfig } from '../../src/models/config.js';
import type { LanguageModel } from '../../src/models/lm.js';
import type { WeightDType } from '../../src/models/weights.js';
import { readArray, safetensorsFromBytes } from './safetensors-lite.js';

/** The repository root (tests run from dist/test/...). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const PARITY = join(ROOT, 'fixtures', 'parity');

/** A PyTorch parity fixture's model on a backend. */
export async function fixtureModel(name: string, backend: Backend, wdtype: WeightDType = 'auto'): Promise<LanguageModel> {
  const dir = join(PARITY, name);
  const cfg = parseConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), `${name}/config.json`);
  if (cfg.arch !== 'mamba') throw new Error(`${name} is not a Mamba-1 fixture`);
  const src = safetensorsFromBytes(new Uint8Array(readFileSync(join(dir, 'model.safetensors'))), `${name}/model.safetensors`);
  return buildMamba(cfg, src, backend, wdtype);
}

export interface FixtureExpected {
  ids: Int32Array; // (b, l)
  logits: Float32Array; // (b, l, V)
  greedy: Int32Array; // (b, l + new)
  b: number; l: number; V: number; total: number;
}

export async function fixtureExpected(name: string): Promise<FixtureExpected> {
  const src = safetensorsFromBytes(new Uint8Array(readFileSync(join(PARITY, name, 'expected.safetensors'))), `${name}/expected.safetensors`);
  const [b, l, V] = src.entries.get('logits')!.shape as [number, number, number];
  const total = src.entries.get('greedy')!.shape[1]!;
  return {
    ids: (await readArray(src, 'input_ids')) as Int32Array,
    logits: (await readArray(src, 'logits')) as Float32Array,
    greedy: (await readArray(src, 'greedy')) as Int32Array,
    b, l, V, total,
  };
}
