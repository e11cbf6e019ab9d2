import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { isMambaError } from '../../src/errors.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { TINY_BPE_DIR } from '../tokenizer/fixtures.js';

/**
 * Mutated tokenizer.json files (values replaced, keys dropped, types changed, hostile patterns and
 * tokens): constructing a Tokenizer and encoding a short text give a result or a MambaError, each
 * within a time bound; never another exception, a hang or a heap abort.
 */
const BASE = JSON.parse(readFileSync(join(TINY_BPE_DIR, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
const TIME_MS = 4000;
/** Per file: construction plus one encode and decode. */
const BOUND_MS = 1000;

/** Regex fragments, hostile ones included, glued into patterns. */
const FRAGMENTS = [
  '(a+)+',
  '(a|aa)*',
  '\\s+(?!\\S)',
  '\\s+',
  '\\p{L}+',
  '(?i:ab)',
  '[^\\s]',
  '(?<=a)',
  '\\1',
  '.*',
  '$',
  '^',
  '\\b',
  '\\w',
  '[',
  ')',
  '{2,1000}',
  '\\p{Bogus}',
  '(?P<n>x)',
  'x{1000}{1000}',
  "'s",
  '\\d',
  '\\h',
  '|',
];
const pattern = fc.array(fc.constantFrom(...FRAGMENTS), { minLength: 1, maxLength: 6 }).map((p) => p.join(''));

const component = fc.oneof(
  pattern.map((p) => ({ type: 'Split', pattern: { Regex: p }, behavior: 'Isolated', invert: false })),
  pattern.map((p) => ({ type: 'Replace', pattern: { Regex: p }, content: '$&x' })),
  pattern.map((p) => ({
    type: 'Sequence',
    pretokenizers: [{ type: 'Split', pattern: { Regex: p }, behavior: 'Removed' }, { type: 'ByteLevel' }],
  })),
  fc
    .constantFrom({ type: 'ByteLevel' }, { type: 'Whitespace' }, { type: 'Bogus' }, null, 5, 'x', [])
    .map((v) => structuredClone(v)),
);

// Cloned: a constant shared by two mutations of one file would make a cycle no JSON file has.
const jsonish = fc
  .oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(null, [], {}, -1, 1e300, 'x'.repeat(5000)))
  .map((v) => structuredClone(v));

/** One mutation of a copy of BASE. */
const mutation = fc.oneof(
  fc
    .tuple(fc.constantFrom('pre_tokenizer', 'normalizer', 'decoder'), component)
    .map(([k, c]) => (j: Record<string, unknown>) => {
      j[k] = c;
    }),
  fc.tuple(fc.constantFrom(...Object.keys(BASE)), jsonish).map(([k, v]) => (j: Record<string, unknown>) => {
    j[k] = v;
  }),
  fc.constantFrom(...Object.keys(BASE)).map((k) => (j: Record<string, unknown>) => {
    delete j[k];
  }),
  fc
    .tuple(fc.constantFrom('type', 'vocab', 'merges', 'unk_token', 'byte_fallback'), jsonish)
    .map(([k, v]) => (j: Record<string, unknown>) => {
      if (typeof j['model'] === 'object' && j['model'] !== null) (j['model'] as Record<string, unknown>)[k] = v;
    }),
  fc
    .tuple(fc.string({ maxLength: 20 }), fc.integer({ min: -2, max: 400 }), fc.boolean())
    .map(([content, id, special]) => (j: Record<string, unknown>) => {
      if (Array.isArray(j['added_tokens'])) j['added_tokens'].push({ id, content, special });
    }),
  fc.integer({ min: 1, max: 3 }).map((m) => (j: Record<string, unknown>) => {
    if (Array.isArray(j['added_tokens']))
      j['added_tokens'].push({ id: 300, content: 'z'.repeat(m * 2 ** 20), special: true });
  }),
  fc.integer({ min: 20, max: 5000 }).map((n) => (j: Record<string, unknown>) => {
    let deep: unknown = { type: 'NFC' };
    for (let i = 0; i < n; i++) deep = { type: 'Sequence', normalizers: [deep] };
    j['normalizer'] = deep;
  }),
  fc
    .array(fc.tuple(fc.string({ maxLength: 3 }), fc.string({ maxLength: 3 })), { maxLength: 5 })
    .map((ms) => (j: Record<string, unknown>) => {
      const merges = (j['model'] as Record<string, unknown> | null)?.['merges'];
      if (Array.isArray(merges)) merges.push(...ms.map(([a, b]) => `${a} ${b}`));
    }),
);

function show(json: unknown): string {
  try {
    return JSON.stringify(json).slice(0, 300);
  } catch {
    return '(too deep to print)';
  }
}

test('fuzz: mutated tokenizer.json loads to a tokenizer or a MambaError, within a time bound', () => {
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.string({ maxLength: 41 }), (muts, text) => {
      const json = structuredClone(BASE);
      for (const m of muts) m(json);
      const t0 = performance.now();
      try {
        const tok = new Tokenizer(json, {}, { source: 'fuzz/tokenizer.json' });
        const ids = tok.encode(`${'a'.repeat(40)}!${text}`);
        tok.decode(ids.filter((id) => id < tok.vocabSize));
      } catch (e) {
        if (!isMambaError(e)) assert.fail(`${show(json)}: ${String((e as Error)?.stack ?? e)}`);
      }
      const ms = performance.now() - t0;
      if (ms >= BOUND_MS) assert.fail(`${ms} ms for ${show(json)}`);
    }),
    { numRuns: 300, interruptAfterTimeLimit: TIME_MS, seed: 13 },
  );
});
