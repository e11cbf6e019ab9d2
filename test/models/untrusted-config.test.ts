/**
 * Untrusted config.json (issue 13): sizes are checked against bounds before anything is built, floats
 * must be finite and in range, and the parameter count a config implies is compared with the
 * checkpoint's size before a tensor list is made.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isMambaError, type ErrorCode } from '../../src/errors.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { expectedMambaTensors } from '../../src/models/build-mamba.js';
import { expectedMamba2Tensors } from '../../src/models/build-mamba2.js';
import { CONFIG_BOUNDS, parameterCount, parseConfig, type ModelConfig } from '../../src/models/config.js';
import { parseTrainSettings } from '../../src/train/settings.js';
import { makeTinyModel, TINY_CONFIG } from '../helpers/tiny-model.js';

function throwsWith(f: () => unknown, code: ErrorCode, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(isMambaError(e, code), `expected MambaError ${code}, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

const hf = (over: Record<string, unknown>) => ({ ...TINY_CONFIG, ...over });

test('sizes beyond the bounds are refused at once, naming the key and the limit', () => {
  const t0 = performance.now();
  throwsWith(
    () => parseConfig(hf({ num_hidden_layers: 1e8 })),
    'CORRUPT_FILE',
    new RegExp(`nLayer \\(num_hidden_layers / n_layer\\) is 100000000, above the limit ${CONFIG_BOUNDS.nLayer.max}`),
  );
  assert.ok(performance.now() - t0 < 100);
  throwsWith(
    () => parseConfig(hf({ hidden_size: 1e300 })),
    'CORRUPT_FILE',
    /dModel \(hidden_size \/ d_model\) must be a positive integer, got 1e\+300/,
  );
  throwsWith(
    () => parseConfig(hf({ vocab_size: 2 ** 30 })),
    'CORRUPT_FILE',
    new RegExp(`vocab_size\\) is 1073741824, above the limit ${CONFIG_BOUNDS.vocabSize.max}`),
  );
  throwsWith(
    () => parseConfig(hf({ state_size: 0 })),
    'CORRUPT_FILE',
    /dState \(state_size \/ d_state\) must be a positive integer, got 0/,
  );
  throwsWith(
    () => parseConfig({ d_model: 64, n_layer: 1e6 }),
    'CORRUPT_FILE',
    /nLayer .* is 1000000, above the limit 4096/,
  );
  const chunky = { model_type: 'mamba2', hidden_size: 64, num_heads: 2, head_dim: 64, n_groups: 1, chunk_size: 1e9 };
  throwsWith(
    () => parseConfig(chunky),
    'CORRUPT_FILE',
    /chunkSize \(chunk_size\) is 1000000000, above the limit 65536/,
  );
});

test('floats must be finite and in range: layer_norm_epsilon Infinity, NaN, negative; expand Infinity', () => {
  const cases = [
    [{ __float__: 'Infinity' }, 'Infinity'],
    [{ __float__: 'NaN' }, 'NaN'],
    [-1e-5, '-0.00001'],
    [2, '2'],
  ] as const;
  for (const [eps, shown] of cases) {
    throwsWith(
      () => parseConfig(hf({ layer_norm_epsilon: eps })),
      'CORRUPT_FILE',
      new RegExp(`layer_norm_epsilon must be a finite number in \\(0, 1\\], got ${shown}`),
    );
  }
  throwsWith(
    () => parseConfig(hf({ expand: { __float__: 'Infinity' } })),
    'CORRUPT_FILE',
    /expand must be a finite number in \(0, 64\], got Infinity/,
  );
  throwsWith(
    () => parseConfig(hf({ x: JSON.parse('['.repeat(200) + ']'.repeat(200)) as unknown })),
    'CORRUPT_FILE',
    /more than 64 levels deep/,
  );
});

test('parameterCount is the element count of the tensors a checkpoint must hold', () => {
  const configs: ModelConfig[] = [
    parseConfig(hf({})),
    parseConfig(hf({ use_bias: true, use_conv_bias: false, tie_word_embeddings: false, time_step_rank: 3 })),
    parseConfig({
      model_type: 'mamba2',
      hidden_size: 32,
      num_heads: 4,
      head_dim: 16,
      n_groups: 2,
      state_size: 8,
      num_hidden_layers: 3,
      vocab_size: 50,
      use_bias: true,
    }),
    parseConfig({
      model_type: 'mamba2',
      hidden_size: 32,
      num_heads: 4,
      head_dim: 16,
      n_groups: 1,
      state_size: 8,
      num_hidden_layers: 2,
      vocab_size: 50,
      tie_word_embeddings: true,
      use_conv_bias: false,
    }),
  ];
  for (const c of configs) {
    const expected = c.arch === 'mamba' ? expectedMambaTensors(c) : c.arch === 'mamba2' ? expectedMamba2Tensors(c) : [];
    const sum = expected.filter((e) => !e.optional).reduce((s, e) => s + e.shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(parameterCount(c), sum, JSON.stringify(c));
  }
  // a 70B-class Mamba (d_model 8192, 160 layers) stays within the bounds
  const big = parseConfig(hf({ hidden_size: 8192, num_hidden_layers: 160, vocab_size: 128256 }));
  assert.ok(parameterCount(big) > 65e9, String(parameterCount(big)));
});

test('a config implying more parameters than the checkpoint holds is CONFIG_MISMATCH naming both', async () => {
  const dir = await makeTinyModel({ tokenizer: false });
  // ~1e14 parameters against a ~60 kB file: without the check, 4096 layers of expectations are built first
  const huge = hf({ hidden_size: 65536, num_hidden_layers: 4096, vocab_size: 50280 });
  await writeFile(join(dir, 'config.json'), JSON.stringify(huge));
  const t0 = performance.now();
  await assert.rejects(loadLanguageModel(dir), (e: unknown) => {
    assert.ok(isMambaError(e, 'CONFIG_MISMATCH'), String(e));
    assert.match(
      e.message,
      new RegExp(
        'model\\.safetensors holds \\d+ bytes, but the config \\(d_model 65536, 4096 layers, d_inner 131072, ' +
          'vocab 50280\\) implies \\d+ parameters, at least \\d+ bytes at 2 bytes each',
      ),
    );
    assert.ok((e.details['parameters'] as number) > 1e14);
    return true;
  });
  assert.ok(performance.now() - t0 < 1000);
});

test('train --config with huge dimensions is BAD_ARGUMENT naming the key or the memory, not a RangeError', () => {
  throwsWith(
    () => parseTrainSettings({ model: { d_model: 1e7 } }, 'run.json'),
    'BAD_ARGUMENT',
    /run\.json: "model\.d_model" is 10000000, above the limit 65536/,
  );
  throwsWith(
    () => parseTrainSettings({ model: { n_layer: 1e9 } }, 'run.json'),
    'BAD_ARGUMENT',
    /"model\.n_layer" is 1000000000, above the limit 4096/,
  );
  throwsWith(
    () => parseTrainSettings({ model: { d_model: 65536, expand: 2 } }, 'run.json'),
    'BAD_ARGUMENT',
    /largest matrix would take \d+ bytes, above the 2147483648-byte limit for one tensor/,
  );
  throwsWith(
    () => parseTrainSettings({ model: { d_model: 8192, n_layer: 4096 } }, 'run.json'),
    'BAD_ARGUMENT',
    /the model has \d+ parameters, which need \d+ bytes to train .* above the 34359738368-byte limit/,
  );
  assert.equal(parseTrainSettings({ model: { d_model: 512, n_layer: 8 } }, 'run.json').model.dModel, 512);
  // a value nested 5000 deep is described, not stringified (JSON.stringify would overflow the stack)
  const deep = JSON.parse('['.repeat(5000) + ']'.repeat(5000)) as unknown;
  throwsWith(
    () => parseTrainSettings({ model: { d_model: deep } }, 'run.json'),
    'BAD_ARGUMENT',
    /"model\.d_model" must be a positive integer, got a deeply nested array/,
  );
});
