import type { TextTokenizer } from '../tokenizer/text-tokenizer.js';

/**
 * Incremental tokenization of texts that extend recent ones. A chat's prompt is its whole history
 * rendered again each turn: encoding 16k characters (4k tokens) costs milliseconds, more than feeding a
 * cached turn's new tokens. So recent texts keep their ids and the text offset where each token ends;
 * a new text that shares a long prefix with one of them takes the ids of that prefix and encodes only
 * from a token boundary some way before the texts part.
 *
 * Splicing is only right where encoding from that boundary gives what encoding the whole text gives
 * there. It is checked, not assumed: encoding restarts `OVERLAP` tokens earlier, and the ids of that
 * overlap must come out exactly as in the whole-text encoding (same ids, same boundaries); the decoded
 * overlap must be the text between the offsets. A pre-tokenizer's splits depend on a few characters of
 * context, so a boundary that re-encodes identically over several tokens is one the whole-text
 * encoding also has. A tokenizer that adds something at the start of every text (a SentencePiece
 * prefix space) fails the check and is encoded whole, as are texts with no long shared prefix.
 */
const OVERLAP = 6;
/** Characters before the texts part where no token may end (a token there may merge with what follows). */
const MARGIN = 32;
/** Shared prefixes shorter than this are not worth a splice. */
const MIN_SHARED = 256;

interface Encoded {
  text: string;
  ids: number[];
  /** ends[i]: text offset where token i ends; null where the tokens' texts do not add up to the text. */
  ends: Int32Array | null;
}

export class PrefixTokenizer {
  private recent: Encoded[] = []; // most recent last
  /** Encodes that reused a prefix, and those done whole (for tests and metrics). */
  spliced = 0;
  whole = 0;

  constructor(
    private readonly tk: TextTokenizer,
    private readonly keep = 16,
  ) {}

  /** `tk.encode(text, { addSpecialTokens: false })`, from a recent text's ids where that is safe. */
  encode(text: string): number[] {
    let best: Encoded | null = null,
      shared = 0;
    for (const e of this.recent) {
      if (!e.ends) continue;
      const s = sharedPrefix(e.text, text);
      if (s > shared) {
        shared = s;
        best = e;
      }
    }
    const ids = (best && shared >= MIN_SHARED && this.splice(best, text, shared)) || null;
    if (ids) this.spliced++;
    else this.whole++;
    const out = ids ?? this.tk.encode(text, { addSpecialTokens: false });
    this.remember(text, out);
    return out;
  }

  private splice(e: Encoded, text: string, shared: number): number[] | null {
    const ends = e.ends!;
    // the last token that ends MARGIN characters before the texts part, and the overlap before it
    const t = upperBound(ends, shared - MARGIN); // tokens [0, t) end at or before shared - MARGIN
    if (t < OVERLAP + 1) return null;
    const t0 = t - OVERLAP;
    const c0 = ends[t0 - 1]; // where token t0 starts
    const rest = this.tk.encode(text.slice(c0), { addSpecialTokens: false });
    for (let i = 0; i < OVERLAP; i++) if (rest[i] !== e.ids[t0 + i]) return null;
    if (this.tk.decode(e.ids.slice(t0, t), { cleanUpTokenizationSpaces: false }) !== text.slice(c0, ends[t - 1])) {
      return null;
    }
    // the prefix's ids before t0, then the re-encoded rest
    return e.ids.slice(0, t0).concat(rest);
  }

  private remember(text: string, ids: number[]): void {
    const i = this.recent.findIndex((e) => e.text === text);
    if (i >= 0) this.recent.splice(i, 1);
    this.recent.push({ text, ids, ends: this.ends(text, ids) });
    if (this.recent.length > this.keep) this.recent.shift();
  }

  private readonly lengths = new Map<number, number>();

  /** Each token's end offset, from its decoded length (memoised per id); null if they do not add up. */
  private ends(text: string, ids: readonly number[]): Int32Array | null {
    const ends = new Int32Array(ids.length);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      let n = this.lengths.get(ids[i]);
      if (n === undefined) {
        n = this.tk.decode([ids[i]], { cleanUpTokenizationSpaces: false }).length;
        this.lengths.set(ids[i], n);
      }
      at += n;
      ends[i] = at;
    }
    return at === text.length ? ends : null;
  }
}

/** Length of the longest common prefix of two strings (compared in blocks, then characters). */
export function sharedPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  for (const step of [4096, 256, 16]) {
    while (i + step <= n && a.slice(i, i + step) === b.slice(i, i + step)) i += step;
  }
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** The number of entries of the ascending `xs` that are <= x. */
function upperBound(xs: Int32Array, x: number): number {
  let lo = 0,
    hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
