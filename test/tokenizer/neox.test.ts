/**
 * The real GPT-NeoX-20B tokenizer (the one Mamba checkpoints use). Its tokenizer.json is not in the
 * repository: set MAMBA_TS_NEOX_TOKENIZER to a copy (the file, or a directory holding tokenizer.json),
 * e.g. `20B_tokenizer.json` from the public GitHub repo m8than/RWKV-Classifier, which is EleutherAI's
 * file with four chat tokens appended at ids 50277..50280.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { loadTokenizer } from '../../src/tokenizer/node.js';
import { DetokenizeStream } from '../../src/tokenizer/stream.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { randomInt, randomText, seededRandom } from './random-text.js';

const path = process.env['MAMBA_TS_NEOX_TOKENIZER'];
const skip = path === undefined ? 'MAMBA_TS_NEOX_TOKENIZER is not set (path to GPT-NeoX-20B tokenizer.json)' : false;

async function neox(): Promise<Tokenizer> {
  if ((await stat(path!)).isDirectory()) return loadTokenizer(path!);
  return new Tokenizer(JSON.parse(await readFile(path!, 'utf8')), undefined, { source: path! });
}

/**
 * Expected ids: "Hello" = 12092, "Ġworld" = 1533, "Ġthe" = 253, "<|endoftext|>" = 0 in the file's
 * vocabulary; the sentences' ids come from an independent reference (openai/gpt-2 encoder.py's bpe()
 * over this file's merges, after NFC, in Python).
 */
const CASES: readonly [string, number[]][] = [
  ['Hello world', [12092, 1533]],
  [' the', [253]],
  ['<|endoftext|>', [0]],
  ['Mamba is a selective state space model.', [46, 31834, 310, 247, 13687, 1375, 2317, 1566, 15]],
  [
    'The café serves crème brûlée 😀 and 中文 text.',
    [510, 36241, 11029, 1531, 22722, 1308, 24690, 77, 7678, 49042, 211, 285, 209, 13609, 20855, 2505, 15],
  ],
  // NFC: e + combining acute is encoded as é.
  ['e\u0301', [860]],
];

test('GPT-NeoX-20B: known encodings, EOS, no BOS', { skip }, async () => {
  const tok = await neox();
  for (const [text, ids] of CASES) {
    assert.deepEqual(tok.encode(text), ids, JSON.stringify(text));
  }
  assert.equal(tok.decode(CASES[4][1]), CASES[4][0]);
  assert.equal(tok.eosTokenId, 0);
  assert.equal(tok.idToToken(0), '<|endoftext|>');
  assert.equal(tok.idToToken(1), '<|padding|>');
  // Runs of 2..24 spaces are added tokens 50276..50254.
  assert.equal(tok.idToToken(50276), '  ');
  // EleutherAI's file ends at id 50276; the RWKV-Classifier copy adds ids up to 50280.
  assert.equal(tok.vocabSize, tok.idToToken(50280) === undefined ? 50277 : 50281);
  assert.deepEqual(tok.encode('Hello world', { addSpecialTokens: true }), [12092, 1533]);
});

test('GPT-NeoX-20B: streaming decode matches decode on text and random ids', { skip }, async () => {
  const tok = await neox();
  const rand = seededRandom(11);
  for (let trial = 0; trial < 100; trial++) {
    const text = randomText(rand, 1 + randomInt(rand, 30));
    const stream = new DetokenizeStream(tok);
    const pieces = tok.encode(text).map((id) => stream.push(id));
    pieces.push(stream.flush());
    for (const piece of pieces) assert.ok(!piece.includes('\uFFFD'), JSON.stringify(piece));
    assert.equal(pieces.join(''), tok.decode(tok.encode(text)));
    const ids = Array.from({ length: randomInt(rand, 30) }, () => randomInt(rand, tok.vocabSize));
    for (const skipSpecialTokens of [false, true]) {
      const s = new DetokenizeStream(tok, { skipSpecialTokens });
      assert.equal(s.pushAll(ids) + s.flush(), tok.decode(ids, { skipSpecialTokens }), JSON.stringify(ids));
    }
  }
});
