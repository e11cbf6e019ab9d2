import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm, truncate, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isMambaError, type ErrorCode } from '../../src/errors.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { loadModel } from '../../src/node/load.js';
import { makeTinyModel } from '../helpers/tiny-model.js';

/** Every way a checkpoint can be wrong gives a MambaError with a code and a message naming the problem. */
async function rejects(p: Promise<unknown>, code: ErrorCode, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isMambaError(e), `not a MambaError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return true;
  });
}

test('a good tiny checkpoint loads, with its tokenizer', async () => {
  const dir = await makeTinyModel();
  const m = await loadModel(dir);
  assert.equal(m.lm.vocabSize, 280);
  assert.equal(m.tokenizer?.vocabSize, 273);
  assert.deepEqual(m.decode(m.encode('the cat')), 'the cat');
});

test('missing directory, config.json or weights', async () => {
  await rejects(loadLanguageModel('/nonexistent/model'), 'FILE_NOT_FOUND', /\/nonexistent\/model/);
  const dir = await makeTinyModel();
  await rm(join(dir, 'model.safetensors'));
  await rejects(loadLanguageModel(dir), 'FILE_NOT_FOUND', /model\.safetensors.*pytorch_model\.bin/);
  await rm(join(dir, 'config.json'));
  await rejects(loadLanguageModel(dir), 'FILE_NOT_FOUND', /config\.json/);
});

test('corrupt config.json: not JSON, wrong types, unsupported architecture', async () => {
  const dir = await makeTinyModel();
  await writeFile(join(dir, 'config.json'), '{"model_type": "mamba", ');
  await rejects(loadLanguageModel(dir), 'CORRUPT_FILE', /config\.json is not valid JSON/);
  await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'mamba', hidden_size: 'big' }));
  await rejects(loadLanguageModel(dir), 'CORRUPT_FILE', /"hidden_size" must be a non-negative integer, got "big"/);
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify({ model_type: 'llama', architectures: ['LlamaForCausalLM'] }),
  );
  await rejects(loadLanguageModel(dir), 'UNSUPPORTED', /model_type "llama" is not supported/);
});

test('truncated weights file', async () => {
  const dir = await makeTinyModel();
  const f = join(dir, 'model.safetensors');
  await truncate(f, (await stat(f)).size - 100);
  await rejects(loadLanguageModel(dir), 'CORRUPT_FILE', /truncated/);
});

test('config vs weights: a missing tensor, a wrong shape, an extra tensor, an untied head without lm_head', async () => {
  await rejects(
    loadLanguageModel(await makeTinyModel({ drop: 'backbone.layers.1.mixer.A_log' })),
    'CONFIG_MISMATCH',
    /backbone\.layers\.1\.mixer\.A_log is missing; expected shape \(32, 4\)/,
  );
  await rejects(
    loadLanguageModel(
      await makeTinyModel({ reshape: { name: 'backbone.layers.0.mixer.in_proj.weight', shape: [60, 16] } }),
    ),
    'CONFIG_MISMATCH',
    /in_proj\.weight has shape \(60, 16\), but the config implies \(64, 16\) \(2 x intermediate_size 32, hidden_size 16\)/,
  );
  await rejects(
    loadLanguageModel(await makeTinyModel({ extra: 'backbone.layers.9.mixer.D' })),
    'CONFIG_MISMATCH',
    /do not belong.*layers\.9/,
  );
  await rejects(
    loadLanguageModel(await makeTinyModel({ config: { tie_word_embeddings: false }, drop: 'lm_head.weight' })),
    'CONFIG_MISMATCH',
    /lm_head\.weight is missing.*tie_word_embeddings false/,
  );
});

test('time_step_rank "auto" and explicit; vocabulary padding rows beyond the tokenizer are never generated', async () => {
  const m = await loadModel(await makeTinyModel({ config: { time_step_rank: 3, vocab_size: 300 } }));
  assert.equal(m.config.arch === 'mamba' && m.config.dtRank, 3);
  const res = await m.generateAll([[5, 6, 7]], {
    maxNewTokens: 40,
    temperature: 5,
    topK: 0,
    topP: 1,
    minP: 0,
    seed: 3,
    ignoreEos: true,
  });
  assert.ok(
    res[0].newTokens.every((t) => t < 273),
    'a padding id was sampled',
  );
});

test('NaN or Inf in the weights is refused, naming the tensor', async () => {
  await rejects(
    loadLanguageModel(await makeTinyModel({ poison: { name: 'backbone.layers.0.mixer.D', value: NaN } })),
    'NON_FINITE',
    /backbone\.layers\.0\.mixer\.D holds NaN/,
  );
  await rejects(
    loadLanguageModel(await makeTinyModel({ poison: { name: 'backbone.norm_f.weight', value: Infinity } })),
    'NON_FINITE',
    /norm_f\.weight holds Infinity/,
  );
});

test('token ids out of range and empty prompts', async () => {
  const m = await loadModel(await makeTinyModel());
  await rejects(
    m.logits([[1, 2, 280]]),
    'TOKEN_OUT_OF_RANGE',
    /token id 280 at position 2 is out of range: the model's vocabulary has 280 ids/,
  );
  await rejects(m.logits([[1, -1]]), 'TOKEN_OUT_OF_RANGE', /token id -1/);
  await rejects(m.generateAll(''), 'EMPTY_INPUT', /prompt 0 is empty/);
  await rejects(m.generateAll([[]]), 'EMPTY_INPUT', /no token ids/);
  await rejects(m.generateAll('hi', { temperature: -1 }), 'BAD_ARGUMENT', /temperature must be a finite number >= 0/);
});
