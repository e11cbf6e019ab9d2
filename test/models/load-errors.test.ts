import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm, truncate, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isMambaError, type ErrorCode } from '../../src/errors.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { loadModel } from '../../src/node/load.js';
import { checkFiniteHalf } from '../../src/models/weights.js';
import { halfToF32 } from '../../src/tensor/dtype.js';
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

test('NaN or Inf in 16-bit weights is refused, kept 16-bit (checked on the bits) or converted', async () => {
  const W = 'backbone.layers.0.mixer.in_proj.weight';
  for (const half of ['F16', 'BF16'] as const)
    for (const [value, shown] of [
      [Infinity, 'Infinity'],
      [-Infinity, '-Infinity'],
      [NaN, 'NaN'],
    ] as const) {
      const dir = await makeTinyModel({ half, poison: { name: W, value } });
      for (const dtype of ['auto', 'f32', 'q4'] as const)
        await rejects(
          loadLanguageModel(dir, { dtype }),
          'NON_FINITE',
          new RegExp(`in_proj\\.weight holds ${shown.replace('-', '\\-')} at flat index \\d+`),
        );
    }
  // and a finite 16-bit checkpoint loads
  for (const half of ['F16', 'BF16'] as const)
    await loadLanguageModel(await makeTinyModel({ half }), { dtype: 'auto' });
});

test('checkFiniteHalf agrees with checkFinite on the converted values for every 16-bit pattern', () => {
  for (const dtype of ['f16', 'bf16'] as const) {
    const all = new Uint16Array(65536).map((_, i) => i);
    const values = halfToF32(all, dtype);
    let nonFinite = 0;
    for (let p = 0; p < 65536; p++) {
      // the pattern at an even and an odd index, in an array whose start is and is not 4-byte aligned
      for (const at of [4, 5])
        for (const shift of [0, 1]) {
          const buf = new Uint16Array(9).fill(dtype === 'f16' ? 0x3c00 : 0x3f80); // ones
          const h = buf.subarray(shift, shift + 8);
          h[at] = p;
          const finite = Number.isFinite(values[p]);
          let threw: unknown;
          try {
            checkFiniteHalf(h, dtype, 'w', 'test');
          } catch (e) {
            threw = e;
          }
          if (finite) assert.equal(threw, undefined, `${dtype} 0x${p.toString(16)} is finite`);
          else {
            assert.ok(isMambaError(threw, 'NON_FINITE'), `${dtype} 0x${p.toString(16)} is refused`);
            assert.match((threw as Error).message, new RegExp(`at flat index ${at};`));
          }
        }
      if (!Number.isFinite(values[p])) nonFinite++;
    }
    // f16: 2 infinities + 2·1023 NaNs; bf16: 2 + 2·127
    assert.equal(nonFinite, dtype === 'f16' ? 2048 : 256);
  }
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
