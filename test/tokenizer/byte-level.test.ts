import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMambaError } from '../../src/errors.js';
import { ByteLevelTokenizer } from '../../src/tokenizer/byte-level.js';
import { loadTokenizer, writeTokenizerFiles } from '../../src/tokenizer/node.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { randomInt, randomText, seededRandom } from './random-text.js';

test('byte tokenizer: ids are the UTF-8 bytes, special tokens follow 255', () => {
  const tok = new ByteLevelTokenizer();
  assert.equal(tok.vocabSize, 257);
  assert.equal(tok.eosTokenId, 256);
  assert.deepEqual(tok.stopTokenIds, [256]);
  assert.deepEqual(tok.specialTokenIds, [256]);
  // 'A' = 41, '€' = E2 82 AC, '😀' = F0 9F 98 80 (UTF-8 by hand).
  assert.deepEqual(tok.encode('A€😀'), [0x41, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80]);
  assert.deepEqual(tok.encode('hi<|endoftext|>yo<|endoftext|>'), [0x68, 0x69, 256, 0x79, 0x6f, 256]);
  assert.equal(tok.decode([0x41, 0xe2, 0x82, 0xac, 256, 0x21]), 'A€<|endoftext|>!');
  assert.equal(tok.decode([0x41, 256, 0x21], { skipSpecialTokens: true }), 'A!');
  // Bytes are decoded per run between special tokens: a split character stays broken, as in HF.
  assert.equal(tok.decode([0xe2, 0x82, 256, 0xac]), '\uFFFD<|endoftext|>\uFFFD');
  assert.equal(tok.idToToken(0x20), 'Ġ');
  assert.equal(tok.idToToken(256), '<|endoftext|>');
  assert.equal(tok.tokenToId('Ġ'), 0x20);
  assert.equal(tok.tokenToId('<|endoftext|>'), 256);
  assert.equal(tok.idToToken(257), undefined);
});

test('byte tokenizer: roles, BOS and bad options', () => {
  const tok = new ByteLevelTokenizer({
    specialTokens: ['<|endoftext|>', '<|bos|>', '<|pad|>'],
    bosToken: '<|bos|>',
    padToken: '<|pad|>',
    addBosToken: true,
  });
  assert.deepEqual([tok.eosTokenId, tok.bosTokenId, tok.padTokenId, tok.vocabSize], [256, 257, 258, 259]);
  assert.deepEqual(tok.encode('a'), [257, 0x61]);
  assert.deepEqual(tok.encode('a', { addSpecialTokens: false }), [0x61]);
  const bad = (options: ConstructorParameters<typeof ByteLevelTokenizer>[0], pattern: RegExp): void =>
    assert.throws(
      () => new ByteLevelTokenizer(options),
      (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && pattern.test(e.message),
    );
  bad({ specialTokens: ['a'] }, /byte token's name/);
  bad({ specialTokens: ['<x>', '<x>'] }, /listed twice/);
  bad({ specialTokens: [''] }, /non-empty/);
  bad({ eosToken: '</s>' }, /eosToken "<\/s>" is not one of specialTokens/);
  bad({ addBosToken: true }, /addBosToken needs a bosToken/);
  assert.throws(
    () => new ByteLevelTokenizer().decode([257]),
    (e: unknown) => isMambaError(e, 'TOKEN_OUT_OF_RANGE'),
  );
});

test('exported tokenizer.json, run by @huggingface/tokenizers, gives the same ids and text on random UTF-8', () => {
  const bytes = new ByteLevelTokenizer({ specialTokens: ['<|endoftext|>', '<|pad|>'], padToken: '<|pad|>' });
  // Through JSON text, as it would be written to disk.
  const hf = new Tokenizer(
    JSON.parse(JSON.stringify(bytes.toTokenizerJson())),
    JSON.parse(JSON.stringify(bytes.toTokenizerConfig())),
  );
  assert.equal(hf.vocabSize, bytes.vocabSize);
  assert.deepEqual([hf.eosTokenId, hf.padTokenId, hf.bosTokenId], [256, 257, undefined]);
  assert.deepEqual(hf.specialTokenIds, [256, 257]);
  const rand = seededRandom(2024);
  for (let trial = 0; trial < 300; trial++) {
    let text = randomText(rand, randomInt(rand, 40));
    if (rand() < 0.3) text += rand() < 0.5 ? '<|endoftext|>' : '<|pad|>' + randomText(rand, 3);
    const ids = bytes.encode(text);
    assert.deepEqual(hf.encode(text), ids, JSON.stringify(text));
    assert.equal(hf.decode(ids), text);
    assert.equal(bytes.decode(ids), text);
    // Random ids (often invalid UTF-8): both decoders agree, with and without special tokens.
    const randomIds = Array.from({ length: randomInt(rand, 20) }, () => randomInt(rand, bytes.vocabSize));
    assert.equal(bytes.decode(randomIds), hf.decode(randomIds), JSON.stringify(randomIds));
    assert.equal(
      bytes.decode(randomIds, { skipSpecialTokens: true }),
      hf.decode(randomIds, { skipSpecialTokens: true }),
    );
  }
  for (let id = 0; id < bytes.vocabSize; id++) assert.equal(hf.idToToken(id), bytes.idToToken(id));
});

test('writeTokenizerFiles + loadTokenizer round-trip the byte tokenizer', async () => {
  const bytes = new ByteLevelTokenizer();
  const dir = join(await mkdtemp(join(tmpdir(), 'mamba-ts-bytes-')), 'tok');
  await writeTokenizerFiles(dir, {
    tokenizerJson: bytes.toTokenizerJson(),
    tokenizerConfig: bytes.toTokenizerConfig(),
  });
  const loaded = await loadTokenizer(dir);
  const text = 'Mamba 🐍 — état de l’art, 状態空間<|endoftext|>';
  assert.deepEqual(loaded.encode(text), bytes.encode(text));
  assert.equal(loaded.eosTokenId, 256);
  assert.equal(loaded.cleanUpTokenizationSpaces, false);
});
