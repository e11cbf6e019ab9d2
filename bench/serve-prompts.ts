/**
 * The load test's prompt words (bench/serve-load.ts, and bench/serve-prefill.ts, whose waves are its first
 * requests): words drawn by an LCG from `seed`, so prompts differ between requests and are the same on every run.
 */
const WORDS = (
  'the little dog ran to the park and saw a big red ball under a tree near the river where children ' +
  'played every day'
).split(' ');

export function promptText(seed: number, words: number): string {
  let s = seed >>> 0;
  const next = (): string => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return WORDS[s % WORDS.length];
  };
  return Array.from({ length: words }, next).join(' ');
}
