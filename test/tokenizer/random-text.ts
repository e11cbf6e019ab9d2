/** Seeded random inputs for the tokenizer tests (deterministic, so a failure reproduces). */

/** mulberry32: a small 32-bit PRNG; returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomInt(rand: () => number, n: number): number {
  return Math.floor(rand() * n);
}

// Pools that exercise 1- to 4-byte UTF-8, combining marks, spaces and the punctuation transformers'
// space clean-up rewrites.
const POOLS: readonly string[][] = [
  [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789'],
  [' ', ' ', ' ', '  ', '\n', '\t'],
  [...'.,!?\'"-:;()<>|'],
  ["n't", "'s", "'re", "'ve", "'m", ' .', ' ,', " ' "],
  [...'éèüñçßøåœÆ'],
  ['e\u0301', 'a\u0308', 'o\u0302'],
  [...'中文字日本語한국어'],
  ['😀', '🚀', '👍🏽', '👩‍💻', '🇫🇷', '€', '∑', '\u{10348}'],
  ['the', ' the', ' world', 'hello', 'café', ' state', ' space'],
];

/** Random text mixing ASCII, accents, combining marks, CJK, emoji and spacing; never lone surrogates. */
export function randomText(rand: () => number, pieces: number): string {
  let text = '';
  for (let i = 0; i < pieces; i++) {
    const pool = POOLS[randomInt(rand, POOLS.length)];
    text += pool[randomInt(rand, pool.length)];
  }
  return text;
}
