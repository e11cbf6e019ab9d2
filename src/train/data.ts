import { fail } from '../errors.js';
import type { TextTokenizer } from '../tokenizer/text-tokenizer.js';
import type { TextDocument } from './corpus.js';
import { Rng } from './rng.js';

/**
 * Token data for language-model training: documents are encoded and joined into one stream with the
 * EOS token after each, split into a training and a validation stream, and the trainer draws random
 * windows of seqLen + 1 tokens from the training stream (inputs = window[:-1], targets = window[1:]).
 */
export interface TokenData {
  train: Int32Array;
  val: Int32Array;
  /** UTF-8 bytes of the validation text (for bits per byte). */
  valBytes: number;
  /** Where the data came from and how it was split, for checkpoints and messages. */
  description: string;
}

export interface SplitOptions {
  /** Fraction of documents (or, for one document, of its text) held out for validation. Default 0.05. */
  valFraction?: number;
}

/**
 * Splits documents into training and validation text. Several documents: every k-th document
 * (k = round(1 / valFraction), starting with document k-1) is held out, so every part of a corpus
 * in file order (the Brown genres) is represented. One document: its last valFraction, cut at a
 * paragraph (blank line) or line boundary.
 */
export function splitDocuments(
  docs: readonly TextDocument[],
  o: SplitOptions = {},
): { train: TextDocument[]; val: TextDocument[] } {
  const f = o.valFraction ?? 0.05;
  if (!(f > 0 && f < 1)) fail('BAD_ARGUMENT', `valFraction must be in (0, 1), got ${f}`);
  if (docs.length === 0) fail('EMPTY_INPUT', 'no documents to train on');
  if (docs.length === 1) {
    const { name, text } = docs[0];
    const target = Math.floor(text.length * (1 - f));
    let cut = text.lastIndexOf('\n\n', target);
    if (cut < target * 0.5) cut = text.lastIndexOf('\n', target);
    if (cut < target * 0.5) cut = target;
    const train = text.slice(0, cut),
      val = text.slice(cut).replace(/^\n+/, '');
    if (train.trim() === '' || val.trim() === '')
      fail('EMPTY_INPUT', `${name} is too short to split into training and validation text`);
    return { train: [{ name, text: train }], val: [{ name: `${name} (validation)`, text: val }] };
  }
  const k = Math.max(2, Math.round(1 / f));
  const train: TextDocument[] = [],
    val: TextDocument[] = [];
  docs.forEach((d, i) => (i % k === k - 1 ? val : train).push(d));
  return { train, val };
}

/** Encodes documents into one stream, EOS after each (when the tokenizer has one). */
export function encodeDocuments(tok: TextTokenizer, docs: readonly TextDocument[]): Int32Array {
  const parts: number[][] = [];
  let n = 0;
  for (const d of docs) {
    const ids = tok.encode(d.text, { addSpecialTokens: false });
    if (tok.eosTokenId !== undefined) ids.push(tok.eosTokenId);
    parts.push(ids);
    n += ids.length;
  }
  const out = new Int32Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function utf8Bytes(docs: readonly TextDocument[]): number {
  const enc = new TextEncoder();
  let n = 0;
  for (const d of docs) n += enc.encode(d.text).length;
  return n;
}

/** A batch of windows: inputs and targets (batch, seqLen) row-major. */
export interface Batch {
  inputs: Int32Array;
  targets: Int32Array;
  batch: number;
  seqLen: number;
}

/**
 * Random windows of a token stream, reproducible from a seed, with a state a checkpoint can save:
 * each window starts at a uniform position in [0, n - seqLen - 1].
 */
export class WindowSampler {
  readonly rng: Rng;

  constructor(
    readonly tokens: Int32Array,
    readonly seqLen: number,
    seed: number,
  ) {
    if (tokens.length < seqLen + 1) {
      fail(
        'EMPTY_INPUT',
        `the training text has ${tokens.length} tokens, fewer than one window of seq_len + 1 = ${seqLen + 1}; use more text or a shorter seq_len`,
      );
    }
    this.rng = new Rng(seed);
  }

  next(batch: number): Batch {
    const l = this.seqLen;
    const inputs = new Int32Array(batch * l),
      targets = new Int32Array(batch * l);
    const starts = this.tokens.length - l; // window [s, s + l] needs s + l <= n - 1
    for (let i = 0; i < batch; i++) {
      const s = this.rng.int(starts);
      inputs.set(this.tokens.subarray(s, s + l), i * l);
      targets.set(this.tokens.subarray(s + 1, s + l + 1), i * l);
    }
    return { inputs, targets, batch, seqLen: l };
  }
}

/**
 * The validation stream as consecutive windows that predict every token but the first exactly once:
 * window k holds tokens [k·l, k·l + l] (inputs the first l, targets the last l); the last window is
 * shorter. `maxTokens` keeps the first windows up to about that many targets (quick evaluations
 * during training).
 */
export function evalWindows(
  tokens: Int32Array,
  seqLen: number,
  maxTokens = Infinity,
): { inputs: Int32Array; targets: Int32Array; len: number }[] {
  const out: { inputs: Int32Array; targets: Int32Array; len: number }[] = [];
  let used = 0;
  for (let s = 0; s + 1 < tokens.length && used < maxTokens; s += seqLen) {
    const len = Math.min(seqLen, tokens.length - 1 - s);
    out.push({ inputs: tokens.slice(s, s + len), targets: tokens.slice(s + 1, s + len + 1), len });
    used += len;
  }
  return out;
}
