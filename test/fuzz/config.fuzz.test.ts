/** Fuzzing config.json parsing: both layouts, random values for every key, random JSON. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseUntrustedJson } from '../../src/io/json.js';
import { parameterCount, parseConfig } from '../../src/models/config.js';
import { parseTrainSettings } from '../../src/train/settings.js';
import { TINY_CONFIG } from '../helpers/tiny-model.js';
import { deepJson, fuzzSettings, mutationsOf, resultOrMambaError, RUNS } from './fuzz-helpers.js';

const HF_KEYS = [
  'hidden_size',
  'num_hidden_layers',
  'vocab_size',
  'state_size',
  'conv_kernel',
  'expand',
  'intermediate_size',
  'time_step_rank',
  'use_bias',
  'use_conv_bias',
  'layer_norm_epsilon',
  'residual_in_fp32',
  'tie_word_embeddings',
  'eos_token_id',
  'num_heads',
  'head_dim',
  'n_groups',
  'chunk_size',
  'time_step_limit',
  'hidden_act',
  'model_type',
];
const SSM_KEYS = [
  'layer',
  'd_state',
  'd_conv',
  'expand',
  'dt_rank',
  'headdim',
  'ngroups',
  'd_ssm',
  'dt_limit',
  'chunk_size',
  'bias',
  'norm_before_gate',
];

/** Values a hostile or broken config.json may hold: edge numbers, transformers' float encoding, wrong types. */
const value = fc.oneof(
  fc.integer({ min: -2, max: 300 }),
  fc.constantFrom(0, 1, 2, 16, 64, 4096, 65_536, 1e8, 1e12, 2 ** 53, 1e300, -1, 0.5, 1e-5),
  fc.double(),
  fc.constantFrom('Infinity', '-Infinity', 'NaN', '1e5', 'x').map((f) => ({ __float__: f })),
  fc.constantFrom('auto', 'silu', 'gelu', 'mamba', 'mamba2', 'Mamba1', 'Mamba2', ''),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.oneof(fc.integer({ min: -1, max: 10 }), fc.double()), { maxLength: 3 }),
);

/** A parsed config is usable: its parameter count is a safe integer (no overflow to Infinity or NaN). */
function parseChecked(json: unknown): void {
  const c = parseConfig(json);
  assert.ok(Number.isSafeInteger(parameterCount(c)), `parameterCount ${parameterCount(c)}`);
}

test('fuzz: transformers configs with random values for their keys give a config or a MambaError', async () => {
  const over = fc.dictionary(fc.constantFrom(...HF_KEYS), value, { maxKeys: 6 });
  const mamba2 = { model_type: 'mamba2', hidden_size: 32, num_heads: 4, head_dim: 16, n_groups: 2 };
  const base = fc.constantFrom<Record<string, unknown>>(TINY_CONFIG, mamba2);
  const prop = fc.asyncProperty(base, over, (b, o) =>
    resultOrMambaError('hf config', () => parseChecked({ ...b, ...o })),
  );
  await fc.assert(prop, fuzzSettings(13301));
});

test('fuzz: mamba_ssm configs with random top-level and ssm_cfg values give a config or a MambaError', async () => {
  const topKeys = ['d_model', 'n_layer', 'vocab_size', 'pad_vocab_size_multiple', 'tie_embeddings', 'd_intermediate'];
  const top = fc.dictionary(fc.constantFrom(...topKeys), value, { maxKeys: 3 });
  const ssm = fc.dictionary(fc.constantFrom(...SSM_KEYS), value, { maxKeys: 4 });
  await fc.assert(
    fc.asyncProperty(top, ssm, fc.constantFrom('Mamba1', 'Mamba2'), (t, s, layer) =>
      resultOrMambaError('mamba_ssm config', () =>
        parseChecked({ d_model: 64, n_layer: 2, vocab_size: 100, ...t, ssm_cfg: { layer, ...s } }),
      ),
    ),
    fuzzSettings(13302),
  );
});

test('fuzz: random JSON text (mutated config.json) through the bounded reader gives a config or a MambaError', async () => {
  const seed = new TextEncoder().encode(JSON.stringify(TINY_CONFIG));
  const json = fc.jsonValue({ maxDepth: 5 }).map((v) => new TextEncoder().encode(JSON.stringify(v)));
  await fc.assert(
    fc.asyncProperty(fc.oneof(mutationsOf(seed), json), (bytes) =>
      resultOrMambaError('config.json', () =>
        parseChecked(parseUntrustedJson(bytes, 'config.json', { maxBytes: 1 << 20 })),
      ),
    ),
    fuzzSettings(13303),
  );
});

test('fuzz: deeply nested values in config.json give a config or a MambaError', async () => {
  const key = fc.constantFrom('hidden_size', 'time_step_limit', 'extra', 'architectures');
  await fc.assert(
    fc.asyncProperty(deepJson, key, (deep, k) =>
      resultOrMambaError('config deep', () => {
        const text = JSON.stringify(TINY_CONFIG).replace(/}$/, `, "${k}": ${deep}}`);
        parseChecked(parseUntrustedJson(text, 'config.json', { maxBytes: 1 << 22 }));
      }),
    ),
    { ...fuzzSettings(13304), numRuns: Math.min(RUNS, 50) },
  );
});

test('fuzz: train --config settings with random (and deeply nested) values give settings or a MambaError', async () => {
  const keys = fc.constantFrom(
    'd_model',
    'n_layer',
    'd_state',
    'd_conv',
    'expand',
    'dt_rank',
    'norm_eps',
    'pad_vocab_multiple',
  );
  const deep = deepJson.map((t) => JSON.parse(t) as unknown);
  const model = fc.dictionary(keys, fc.oneof(value, deep), { maxKeys: 4 });
  const tokenizer = fc.record({ type: fc.constantFrom('bpe', 'byte'), vocab_size: value });
  await fc.assert(
    fc.asyncProperty(model, tokenizer, (m, t) =>
      resultOrMambaError('train settings', () => parseTrainSettings({ model: m, tokenizer: t }, 'run.json')),
    ),
    { ...fuzzSettings(13305), numRuns: Math.min(RUNS, 100) },
  );
});
