/**
 * Writes a small random hybrid checkpoint a server can load, for load tests of hybrids (issue 15:
 * `node dist/bench/serve-load.js --model <dir>`): Granite 4.0-H's layout (Mamba-2 layers with an
 * attention layer (GQA, RoPE) in every `--attention-every`), random weights (A_log, norms and dt_bias
 * near their usual values, the rest normal / sqrt(fan-in)), and the default model's BPE tokenizer (the
 * vocabulary is its 2048 tokens). Nothing trained: the tokens are noise, their cost is the real one.
 *
 * Usage: npm run build && node dist/bench/random-hybrid.js --out /tmp/hybrid [--d-model 256] [--layers 8]
 *        [--attention-every 4] [--kv-heads 2] [--d-state 64] [--seed 7]
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { encodeSafetensors, type TensorToWrite } from '../src/io/safetensors-writer.js';
import { Rng } from '../src/mixers/init.js';
import { expectedHybridTensors } from '../src/models/build-hybrid.js';
import { parseHybridConfig } from '../src/models/config-hybrid.js';
import { graniteConfigJson, randomHybridValues } from './granite-random.js';

const { values: a } = parseArgs({
  options: {
    out: { type: 'string' },
    'd-model': { type: 'string', default: '256' },
    layers: { type: 'string', default: '8' },
    'attention-every': { type: 'string', default: '4' },
    'kv-heads': { type: 'string', default: '2' },
    'd-state': { type: 'string', default: '64' },
    seed: { type: 'string', default: '7' },
  },
  strict: true,
});
if (!a.out) throw new Error('--out <dir> is required');
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TOKENIZER = join(ROOT, 'models/default');
const d = Number(a['d-model']),
  nLayer = Number(a.layers),
  every = Number(a['attention-every']);
const layerTypes = Array.from({ length: nLayer }, (_, i) =>
  i % every === every - 1 ? 'full_attention' : 'linear_attention',
);
const raw = graniteConfigJson({
  dModel: d,
  layerTypes,
  vocab: 2048,
  kvHeads: Number(a['kv-heads']),
  dState: Number(a['d-state']),
});

const config = parseHybridConfig(raw);
const rng = new Rng(Number(a.seed));
const tensors: TensorToWrite[] = [];
for (const e of expectedHybridTensors(config)) {
  if (e.optional) continue;
  const v = randomHybridValues(e.name, e.shape, rng);
  tensors.push({ name: e.name, dtype: 'F32', shape: e.shape, data: v });
}
mkdirSync(a.out, { recursive: true });
writeFileSync(join(a.out, 'config.json'), JSON.stringify(raw, null, 2));
writeFileSync(join(a.out, 'model.safetensors'), encodeSafetensors(tensors));
for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TOKENIZER, f), join(a.out, f));
const params = tensors.reduce((s, t) => s + t.shape.reduce((x, y) => x * y, 1), 0);
console.log(
  `wrote ${a.out}: granitemoehybrid, d_model ${d}, ${nLayer} layers (${layerTypes.filter((t) => t === 'full_attention').length} attention), ${(params / 1e6).toFixed(2)} M parameters`,
);
