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
const headDim = 64;

const raw = {
  architectures: ['GraniteMoeHybridForCausalLM'],
  model_type: 'granitemoehybrid',
  hidden_size: d,
  num_hidden_layers: nLayer,
  layer_types: Array.from({ length: nLayer }, (_, i) =>
    i % every === every - 1 ? 'full_attention' : 'linear_attention',
  ),
  vocab_size: 2048,
  bos_token_id: 0,
  eos_token_id: 0,
  pad_token_id: 0,
  num_attention_heads: d / headDim,
  num_key_value_heads: Number(a['kv-heads']),
  position_embedding_type: 'rope',
  rope_parameters: { rope_theta: 10000, rope_type: 'default' },
  mamba_n_heads: (2 * d) / headDim,
  mamba_d_head: headDim,
  mamba_d_state: Number(a['d-state']),
  mamba_n_groups: 1,
  mamba_d_conv: 4,
  mamba_expand: 2,
  mamba_chunk_size: 64,
  mamba_conv_bias: true,
  mamba_proj_bias: false,
  num_local_experts: 0,
  num_experts_per_tok: 0,
  shared_intermediate_size: 2 * d,
  intermediate_size: 2 * d,
  hidden_act: 'silu',
  rms_norm_eps: 1e-5,
  attention_bias: false,
  embedding_multiplier: 1,
  residual_multiplier: 1,
  attention_multiplier: 1 / Math.sqrt(headDim),
  logits_scaling: 1,
  tie_word_embeddings: true,
  dtype: 'float32',
};

const config = parseHybridConfig(raw);
const rng = new Rng(Number(a.seed));
const tensors: TensorToWrite[] = [];
for (const e of expectedHybridTensors(config)) {
  if (e.optional) continue;
  const n = e.shape.reduce((x, y) => x * y, 1);
  const v = new Float32Array(n);
  if (e.name.endsWith('A_log')) v.fill(0.5);
  else if (e.name.endsWith('norm.weight') || e.name.endsWith('.D')) v.fill(1);
  else if (e.name.endsWith('dt_bias')) v.fill(-4.6);
  else {
    const s = 1 / Math.sqrt(e.shape[e.shape.length - 1]);
    for (let i = 0; i < n; i++) v[i] = rng.normal() * s;
  }
  tensors.push({ name: e.name, dtype: 'F32', shape: e.shape, data: v });
}
mkdirSync(a.out, { recursive: true });
writeFileSync(join(a.out, 'config.json'), JSON.stringify(raw, null, 2));
writeFileSync(join(a.out, 'model.safetensors'), encodeSafetensors(tensors));
for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TOKENIZER, f), join(a.out, f));
const params = tensors.reduce((s, t) => s + t.shape.reduce((x, y) => x * y, 1), 0);
console.log(
  `wrote ${a.out}: granitemoehybrid, d_model ${d}, ${nLayer} layers (${raw.layer_types.filter((t) => t === 'full_attention').length} attention), ${(params / 1e6).toFixed(2)} M parameters`,
);
