import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isMambaError } from '../../src/errors.js';
import { ByteLevelTokenizer } from '../../src/tokenizer/byte-level.js';
import { CleanUpStream, cleanUpTokenization } from '../../src/tokenizer/cleanup.js';
import { loadTokenizer } from '../../src/tokenizer/node.js';
import { DetokenizeStream } from '../../src/tokenizer/stream.js';
import type { DetokenizeStreamOptions } from '../../src/tokenizer/stream.js';
import type { TextTokenizer } from '../../src/tokenizer/text-tokenizer.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { TINY_BPE_DIR } from './fixtures.js';
import { randomInt, randomText, seededRandom } from './random-text.js';

/** Streams ids one at a time; returns each push's output and the flush output last. */
function streamPieces(tok: TextTokenizer, ids: readonly number[], options: DetokenizeStreamOptions = {}): string[] {
  const stream = new DetokenizeStream(tok, options);
  const pieces = ids.map((id) => stream.push(id));
  pieces.push(stream.flush());
  return pieces;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** No piece holds U+FFFD or a lone surrogate: no character was split across pieces. */
function assertWholeCharacters(pieces: readonly string[], context: string): void {
  for (const piece of pieces) {
    assert.ok(!piece.includes('\uFFFD'), `${context}: piece ${JSON.stringify(piece)} holds U+FFFD`);
    assert.ok(!LONE_SURROGATE.test(piece), `${context}: piece ${JSON.stringify(piece)} splits a surrogate pair`);
  }
}

test('a character split over byte-level tokens is held back until complete (emoji, CJK, accents)', async () => {
  const tok = await loadTokenizer(TINY_BPE_DIR);
  // 😀 = F0 9F 98 80 -> tokens [ðŁ, ĺ, Ģ]: nothing until the last byte arrives.
  assert.deepEqual(streamPieces(tok, tok.encode('😀')), ['', '', '😀', '']);
  // 中 = E4 B8 AD -> [ä¸, ­].
  assert.deepEqual(streamPieces(tok, tok.encode('中')), ['', '中', '']);
  // è = C3 A8 (not a merged token in the fixture) -> two byte tokens.
  assert.deepEqual(streamPieces(tok, tok.encode('è!')), ['', 'è', '!', '']);
  // A combining accent (U+0301 = CC 81) after a letter: the letter is emitted, then the accent whole.
  assert.deepEqual(streamPieces(tok, tok.encode('e\u0301')), ['e', '', '\u0301', '']);
  const text = 'hello world 😀 café 中文 👩‍💻 🇫🇷 naïve e\u0301!';
  const pieces = streamPieces(tok, tok.encode(text));
  assertWholeCharacters(pieces, text);
  assert.equal(pieces.join(''), text);
});

test('an incomplete character at the end is flushed as decode gives it (U+FFFD)', async () => {
  const tok = await loadTokenizer(TINY_BPE_DIR);
  const ids = tok.encode('a😀').slice(0, 2); // 'a', then the first two bytes of the emoji
  const pieces = streamPieces(tok, ids);
  assert.deepEqual(pieces, ['a', '', '\uFFFD']);
  assert.equal(pieces.join(''), tok.decode(ids));
});

test('property: streamed pieces concatenate to decode(all ids), for random id sequences', async () => {
  const { json, config } = {
    json: JSON.parse(await readFile(join(TINY_BPE_DIR, 'tokenizer.json'), 'utf8')) as unknown,
    config: JSON.parse(await readFile(join(TINY_BPE_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>,
  };
  const tokenizers: [string, TextTokenizer][] = [
    ['tiny BPE', new Tokenizer(json, config)],
    ['tiny BPE with clean-up', new Tokenizer(json, { ...config, clean_up_tokenization_spaces: true })],
    ['byte-level', new ByteLevelTokenizer({ specialTokens: ['<|endoftext|>', '<pad>'] })],
  ];
  const rand = seededRandom(1234);
  for (const [name, tok] of tokenizers) {
    for (let trial = 0; trial < 400; trial++) {
      // Bias towards ids that make text the clean-up rewrites: space, '.', ',', "'", 'n', 't', 's'.
      const hot = [' ', '.', ',', "'", 'n', 't', 's', '!'].map((c) => tok.tokenToId(c === ' ' ? 'Ġ' : c)!);
      const ids = Array.from({ length: randomInt(rand, 40) }, () =>
        rand() < 0.4 ? hot[randomInt(rand, hot.length)] : randomInt(rand, tok.vocabSize),
      );
      for (const options of [{}, { skipSpecialTokens: true }] as DetokenizeStreamOptions[]) {
        const expected = tok.decode(ids, options);
        const got = streamPieces(tok, ids, options).join('');
        assert.equal(got, expected, `${name} ${JSON.stringify(options)} ids ${JSON.stringify(ids)}`);
      }
    }
  }
});

test('property: streaming the encoding of random text gives the text, one whole character at a time', async () => {
  const tok = await loadTokenizer(TINY_BPE_DIR);
  const bytes = new ByteLevelTokenizer();
  const rand = seededRandom(99);
  for (let trial = 0; trial < 300; trial++) {
    const text = randomText(rand, 1 + randomInt(rand, 30));
    for (const t of [tok, bytes]) {
      const pieces = streamPieces(t, t.encode(text));
      assertWholeCharacters(pieces, JSON.stringify(text));
      assert.equal(pieces.join(''), text);
    }
  }
});

test('clean-up in a stream: " ." arriving in two pushes still becomes "."', async () => {
  const { json } = { json: JSON.parse(await readFile(join(TINY_BPE_DIR, 'tokenizer.json'), 'utf8')) as unknown };
  const tok = new Tokenizer(json, { clean_up_tokenization_spaces: true });
  const ids = tok.encode('hello world . the');
  const pieces = streamPieces(tok, ids);
  assert.equal(pieces.join(''), 'hello world. the');
  assert.equal(pieces.join(''), tok.decode(ids));
  // Overriding the tokenizer's setting.
  assert.equal(streamPieces(tok, ids, { cleanUpTokenizationSpaces: false }).join(''), 'hello world . the');
});

test('CleanUpStream equals cleanUpTokenization however the text is cut, including chained rewrites', () => {
  const rand = seededRandom(5);
  const texts = ["b  ' m", "x ' ' s .", "do n't , 're ' ve", ' . . ,, !', "a 'm 's 've 're ' n't"];
  for (let i = 0; i < 300; i++) texts.push(randomText(rand, 25));
  for (const text of texts) {
    for (let cut = 0; cut < 4; cut++) {
      const stream = new CleanUpStream();
      let out = '';
      for (let i = 0; i < text.length;) {
        const n = 1 + randomInt(rand, 4);
        out += stream.push(text.slice(i, i + n));
        i += n;
      }
      out += stream.end();
      assert.equal(out, cleanUpTokenization(text), JSON.stringify(text));
    }
  }
  // The chained case: the " ' " rewrite creates a " 'm" that the later pass rewrites.
  assert.equal(cleanUpTokenization("b  ' m"), "b'm");
});

test('push rejects ids outside the vocabulary and leaves the stream usable; flush resets it', async () => {
  const tok = await loadTokenizer(TINY_BPE_DIR);
  const stream = new DetokenizeStream(tok);
  assert.equal(stream.push(263), 'hello');
  assert.throws(
    () => stream.push(tok.vocabSize),
    (e: unknown) => isMambaError(e, 'TOKEN_OUT_OF_RANGE') && /token id 273/.test(e.message),
  );
  assert.equal(stream.push(268), ' world');
  assert.equal(stream.flush(), '');
  assert.equal(stream.pushAll(tok.encode(' the 😀')), ' the 😀');
  assert.equal(stream.flush(), '');
});
