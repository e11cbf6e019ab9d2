import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import * as F from '../../src/ops/ops.js';
import { ByteLevelTokenizer } from '../../src/tokenizer/byte-level.js';
import { trainBpe } from '../../src/tokenizer/bpe-train.js';
import { brownFirst } from './helpers.js';
import { evaluate, tokenByteLengths } from '../../src/train/evaluate.js';
import { initMambaModel } from '../../src/train/init.js';
import { modelConfigFor } from '../../src/train/model-io.js';
import { DEFAULT_SETTINGS } from '../../src/train/settings.js';

test('token byte lengths: summed over an encoding they give the UTF-8 length of the text (bytes and a trained BPE)', () => {
  const docs = brownFirst(4);
  const text = docs[3].text + ' naïve café — “quotes” 日本';
  const bpe = trainBpe(
    docs.slice(0, 3).map((d) => d.text),
    { vocabSize: 600 },
  ).toTokenizer();
  for (const tok of [new ByteLevelTokenizer(), bpe]) {
    const lens = tokenByteLengths(tok, tok.vocabSize + 5);
    const ids = tok.encode(text, { addSpecialTokens: false });
    assert.equal(
      ids.reduce((s, id) => s + lens[id], 0),
      Buffer.byteLength(text),
    );
    assert.equal(lens[tok.eosTokenId!], 0);
  }
});

test('evaluate: mean loss and bits per byte equal a direct cross-entropy over the same windows', async () => {
  const bk = cpu();
  const tok = new ByteLevelTokenizer();
  const cfg = modelConfigFor({ ...DEFAULT_SETTINGS.model, dModel: 16, nLayer: 1, dState: 4 }, tok.vocabSize, {
    eos: 256,
    bos: 256,
    pad: 256,
  });
  const lm = await initMambaModel(cfg, { seed: 1 }, bk);
  const text = 'It was the best of times, it was the worst of times.';
  const tokens = Int32Array.from(tok.encode(text));
  const lens = tokenByteLengths(tok, lm.vocabSize);
  const r = await evaluate(lm, tokens, lens, { seqLen: 10, batchSize: 3 });
  // Direct: one window per 10 targets, summed.
  let nats = 0;
  for (let s = 0; s + 1 < tokens.length; s += 10) {
    const len = Math.min(10, tokens.length - 1 - s);
    const logits = lm.forward(bk.upload(tokens.slice(s, s + len), [1, len], 'i32'));
    nats += bk.readSync(F.crossEntropy(logits, bk.upload(tokens.slice(s + 1, s + 1 + len), [1, len], 'i32'), 'sum'))[0];
  }
  assert.equal(r.tokens, tokens.length - 1);
  assert.equal(r.bytes, Buffer.byteLength(text) - 1);
  assert.ok(Math.abs(r.loss - nats / r.tokens) < 1e-5, `${r.loss} vs ${nats / r.tokens}`);
  assert.ok(Math.abs(r.bpb - nats / Math.LN2 / r.bytes) < 1e-5);
  // An untrained model is close to uniform over the vocabulary: about ln(264) nats per token.
  assert.ok(Math.abs(r.loss - Math.log(lm.vocabSize)) < 0.5, String(r.loss));
});
