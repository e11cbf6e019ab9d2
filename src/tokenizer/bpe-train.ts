/**
 * Training a GPT-2 style byte-level BPE (Sennrich et al. 2016, "Neural Machine Translation of Rare
 * Words with Subword Units"; GPT-2's byte-level variant, Radford et al. 2019).
 *
 * 1. Split the text into pieces with GPT-2's pattern (special tokens are cut out first and never
 *    learned from); count each distinct piece.
 * 2. Each piece starts as its UTF-8 bytes. Ids: special tokens 0..k-1 (as GPT-NeoX has
 *    `<|endoftext|>` = 0), then the 256 bytes in byte order, then one id per merge.
 * 3. Repeatedly take the adjacent pair with the highest count over all pieces (ties: the pair of
 *    smaller ids, left id first), give it a new id, and replace it in every piece that holds it, left to
 *    right. Stop at the vocabulary size, or when no pair occurs minPairCount times.
 *
 * Speed: pair counts are updated incrementally from each merge's neighbours (never recounted), a
 * per-pair list of the pieces holding it limits a merge to those pieces, and a max-heap with lazy
 * deletion finds the next pair (a popped entry whose count has gone stale is pushed back with its
 * current count; counts of existing pairs only ever fall, since only pairs with the new id grow).
 *
 * The result writes a Hugging Face `tokenizer.json` whose encoder reproduces the training
 * segmentation: it merges by rank, and each training merge creates a new token, so pairs made by a
 * merge always rank after it. A merge whose string already exists (`ab`+`c` after `a`+`bc`) would
 * break that, so such a pair is dropped instead of merged.
 */
import { fail } from '../errors.js';
import { BYTE_TO_UNICODE, GPT2_PRETOKENIZE_PATTERN, UNICODE_TO_BYTE } from './gpt2-bytes.js';
import { byteLevelBpeTokenizerJson, byteLevelTokenizerConfig } from './hf-json.js';
import type { HfByteLevelBpeJson, HfTokenizerConfig } from './hf-json.js';
import { Tokenizer } from './tokenizer.js';

export interface BpeTrainOptions {
  /** Total ids: special tokens + 256 bytes + merges. At least specialTokens.length + 256. */
  readonly vocabSize: number;
  /** Special tokens, ids 0..k-1 in this order. Default `['<|endoftext|>']`. */
  readonly specialTokens?: readonly string[];
  /** EOS token (one of specialTokens). Default: the first special token. */
  readonly eosToken?: string;
  readonly padToken?: string;
  /** A pair must occur this often to be merged. Default 2. */
  readonly minPairCount?: number;
}

/** A trained byte-level BPE. */
export class TrainedBpe {
  constructor(
    /** Id -> token: special tokens as written, other tokens in GPT-2's byte alphabet. */
    readonly vocab: readonly string[],
    /** Merge rules in the order learned (rank order). */
    readonly merges: readonly (readonly [string, string])[],
    readonly specialTokens: readonly string[],
    readonly eosToken: string | undefined,
    readonly padToken: string | undefined,
    /** The trainer's final segmentation of every distinct piece of the training text (piece -> ids). */
    readonly trainingSegmentation: ReadonlyMap<string, readonly number[]>,
  ) {}

  toTokenizerJson(): HfByteLevelBpeJson {
    return byteLevelBpeTokenizerJson({ vocab: this.vocab, merges: this.merges, specialTokens: this.specialTokens });
  }

  toTokenizerConfig(): HfTokenizerConfig {
    return byteLevelTokenizerConfig({ eosToken: this.eosToken, padToken: this.padToken });
  }

  /** A Tokenizer running this BPE through `@huggingface/tokenizers`, from the exported files. */
  toTokenizer(): Tokenizer {
    return new Tokenizer(this.toTokenizerJson(), this.toTokenizerConfig());
  }
}

const PAIR_SHIFT = 2 ** 21; // pair key = left * PAIR_SHIFT + right; ids stay below 2^21
const MAX_VOCAB = PAIR_SHIFT;

export function trainBpe(text: string | Iterable<string>, options: BpeTrainOptions): TrainedBpe {
  const specials = options.specialTokens ?? ['<|endoftext|>'];
  const minPairCount = options.minPairCount ?? 2;
  validate(options, specials, minPairCount);

  // 1. Distinct pieces and their counts.
  const pieceCounts = new Map<string, number>();
  const splitter = specialSplitter(specials);
  for (const chunk of typeof text === 'string' ? [text] : text) {
    if (typeof chunk !== 'string') fail('BAD_ARGUMENT', `training text must be strings, got ${typeof chunk}`);
    for (const plain of splitter(chunk)) {
      for (const piece of plain.match(GPT2_PRETOKENIZE_PATTERN) ?? []) {
        pieceCounts.set(piece, (pieceCounts.get(piece) ?? 0) + 1);
      }
    }
  }

  // 2. Initial vocabulary and pieces as byte ids.
  const vocab: string[] = [...specials];
  const byteBase = vocab.length;
  for (const ch of BYTE_TO_UNICODE) vocab.push(ch);
  const tokenIds = new Map<string, number>(vocab.map((t, id) => [t, id]));
  const pieces: string[] = [];
  const counts: number[] = [];
  const symbols: Int32Array[] = [];
  const utf8 = new TextEncoder();
  for (const [piece, count] of pieceCounts) {
    const bytes = utf8.encode(piece);
    const ids = new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) ids[i] = byteBase + bytes[i];
    pieces.push(piece);
    counts.push(count);
    symbols.push(ids);
  }

  // Pair counts and, per pair, the pieces that (may) hold it; stale entries are skipped when used.
  const pairCounts = new Map<number, number>();
  const holders = new Map<number, number[]>();
  const banned = new Set<number>();
  const addHolder = (key: number, w: number): void => {
    const list = holders.get(key);
    if (list === undefined) holders.set(key, [w]);
    else if (list[list.length - 1] !== w) list.push(w);
  };
  for (let w = 0; w < symbols.length; w++) {
    const ids = symbols[w];
    for (let i = 0; i + 1 < ids.length; i++) {
      const key = ids[i] * PAIR_SHIFT + ids[i + 1];
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + counts[w]);
      addHolder(key, w);
    }
  }
  const heap = new PairHeap();
  for (const [key, count] of pairCounts) heap.push(count, key);

  // 3. Merges.
  const merges: [string, string][] = [];
  const seen = new Int32Array(symbols.length).fill(-1);
  const grown = new Set<number>();
  const change = (key: number, delta: number, w: number): void => {
    if (banned.has(key)) return;
    const next = (pairCounts.get(key) ?? 0) + delta;
    if (next === 0) {
      pairCounts.delete(key);
      holders.delete(key);
    } else {
      pairCounts.set(key, next);
    }
    if (delta > 0) {
      addHolder(key, w);
      grown.add(key);
    }
  };
  while (vocab.length < options.vocabSize && heap.size > 0) {
    const key = heap.topKey();
    const count = heap.topCount();
    heap.pop();
    const current = pairCounts.get(key) ?? 0;
    if (current !== count) {
      if (current > 0) heap.push(current, key);
      continue;
    }
    if (count < minPairCount) break;
    const a = Math.floor(key / PAIR_SHIFT);
    const b = key - a * PAIR_SHIFT;
    const merged = vocab[a] + vocab[b];
    pairCounts.delete(key);
    const holding = holders.get(key) ?? [];
    holders.delete(key);
    if (tokenIds.has(merged)) {
      banned.add(key);
      continue;
    }
    const c = vocab.length;
    vocab.push(merged);
    tokenIds.set(merged, c);
    merges.push([vocab[a], vocab[b]]);
    const mergeIndex = merges.length;
    for (const w of holding) {
      if (seen[w] === mergeIndex) continue;
      seen[w] = mergeIndex;
      const replaced = mergeInPiece(symbols[w], a, b, c, counts[w], w, change);
      if (replaced !== undefined) symbols[w] = replaced;
    }
    // Only pairs holding c grew, and none of them was in the heap yet.
    for (const k of grown) {
      const n = pairCounts.get(k);
      if (n !== undefined && n > 0) heap.push(n, k);
    }
    grown.clear();
  }

  const segmentation = new Map<string, readonly number[]>();
  for (let w = 0; w < pieces.length; w++) segmentation.set(pieces[w], Array.from(symbols[w]));
  return new TrainedBpe(vocab, merges, [...specials], options.eosToken ?? specials[0], options.padToken, segmentation);
}

/**
 * Replaces pair (a, b) by c in one piece, left to right, and reports the pair-count changes of the
 * neighbours (the caller drops (a,b) itself): per merge, (prev,a) becomes (prev,c) and (b,next) becomes
 * (c,next), where prev is the already rewritten left neighbour (so `a b a b` -> `c c` counts (c,c)
 * once and (c,a) not at all).
 * Returns the new symbols, or undefined when the piece no longer holds the pair.
 */
function mergeInPiece(
  ids: Int32Array,
  a: number,
  b: number,
  c: number,
  count: number,
  w: number,
  change: (key: number, delta: number, w: number) => void,
): Int32Array | undefined {
  const n = ids.length;
  let out: Int32Array | undefined;
  let len = 0;
  for (let i = 0; i < n;) {
    if (i + 1 < n && ids[i] === a && ids[i + 1] === b) {
      if (out === undefined) {
        out = new Int32Array(n - 1);
        out.set(ids.subarray(0, i));
        len = i;
      }
      if (len > 0) {
        const prev = out[len - 1];
        change(prev * PAIR_SHIFT + a, -count, w);
        change(prev * PAIR_SHIFT + c, count, w);
      }
      if (i + 2 < n) {
        const next = ids[i + 2];
        change(b * PAIR_SHIFT + next, -count, w);
        change(c * PAIR_SHIFT + next, count, w);
      }
      out[len++] = c;
      i += 2;
    } else {
      if (out !== undefined) out[len++] = ids[i];
      i++;
    }
  }
  return out === undefined ? undefined : out.slice(0, len);
}

/** Max-heap of (count, pair key): higher count first, then smaller key (smaller left id, then right). */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  topKey(): number {
    return this.keys[0];
  }

  topCount(): number {
    return this.counts[0];
  }

  push(count: number, key: number): void {
    let i = this.keys.length;
    this.counts.push(count);
    this.keys.push(key);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(count, key, this.counts[parent], this.keys[parent])) break;
      this.counts[i] = this.counts[parent];
      this.keys[i] = this.keys[parent];
      i = parent;
    }
    this.counts[i] = count;
    this.keys[i] = key;
  }

  pop(): void {
    const lastCount = this.counts.pop()!;
    const lastKey = this.keys.pop()!;
    const n = this.keys.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child =
        right < n && this.before(this.counts[right], this.keys[right], this.counts[left], this.keys[left])
          ? right
          : left;
      if (!this.before(this.counts[child], this.keys[child], lastCount, lastKey)) break;
      this.counts[i] = this.counts[child];
      this.keys[i] = this.keys[child];
      i = child;
    }
    this.counts[i] = lastCount;
    this.keys[i] = lastKey;
  }

  private before(countA: number, keyA: number, countB: number, keyB: number): boolean {
    return countA > countB || (countA === countB && keyA < keyB);
  }
}

function validate(options: BpeTrainOptions, specials: readonly string[], minPairCount: number): void {
  const seen = new Set<string>();
  for (const token of specials) {
    if (typeof token !== 'string' || token.length === 0) {
      fail('BAD_ARGUMENT', `specialTokens must be non-empty strings, got ${JSON.stringify(token)}`, {
        option: 'specialTokens',
      });
    }
    if (seen.has(token))
      fail('BAD_ARGUMENT', `special token ${JSON.stringify(token)} is listed twice`, { option: 'specialTokens' });
    if (UNICODE_TO_BYTE.has(token)) {
      fail('BAD_ARGUMENT', `special token ${JSON.stringify(token)} is a byte token's name; use a longer name`, {
        option: 'specialTokens',
      });
    }
    seen.add(token);
  }
  const least = specials.length + 256;
  if (!Number.isInteger(options.vocabSize) || options.vocabSize < least || options.vocabSize > MAX_VOCAB) {
    fail(
      'BAD_ARGUMENT',
      `vocabSize must be an integer in [${least}, ${MAX_VOCAB}] (special tokens + 256 bytes + merges), got ${options.vocabSize}`,
      {
        option: 'vocabSize',
      },
    );
  }
  if (!Number.isInteger(minPairCount) || minPairCount < 1) {
    fail('BAD_ARGUMENT', `minPairCount must be a positive integer, got ${minPairCount}`, { option: 'minPairCount' });
  }
  for (const [option, token] of [
    ['eosToken', options.eosToken],
    ['padToken', options.padToken],
  ] as const) {
    if (token !== undefined && !seen.has(token)) {
      fail(
        'BAD_ARGUMENT',
        `${option} ${JSON.stringify(token)} is not one of specialTokens ${JSON.stringify(specials)}`,
        { option },
      );
    }
  }
}

/** Splits text around special tokens (leftmost, longest first), returning the plain parts. */
function specialSplitter(specials: readonly string[]): (text: string) => string[] {
  if (specials.length === 0) return (text) => [text];
  const escaped = [...specials]
    .sort((x, y) => y.length - x.length)
    .map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const pattern = new RegExp(escaped.join('|'), 'gu');
  return (text) => text.split(pattern);
}
