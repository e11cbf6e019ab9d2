import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { isMambaError } from '../../src/errors.js';
import { TOKENIZER_LIMITS } from '../../src/tokenizer/limits.js';
import { compileLinear, KNOWN_LINEAR_PATTERNS, LinearPattern } from '../../src/tokenizer/linear-regex.js';
import { loadTokenizer } from '../../src/tokenizer/node.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { TINY_BPE_DIR } from './fixtures.js';
import { randomText, seededRandom } from './random-text.js';

/**
 * Hostile or damaged tokenizer.json files are bounded (sizes, counts, nesting) and their patterns run
 * in linear time (RE2), with the same matches as the library's JavaScript RegExp on the standard
 * pre-tokenizer patterns.
 */
const PATTERNS: Record<string, string> = {
  'GPT-2': "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  'Llama 3 / cl100k':
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  Qwen2:
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  o200k:
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|" +
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|" +
    '\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+',
  'digits, Metaspace-style': '\\p{N}|[^\\s\\p{N}]+|\\s',
  'hex and anchors': '^\\h+|\\d{2,4}|\\A ?x|[\\u00e9-\\u00ff]+$|.',
};

/** Extra characters where engines could differ: Unicode spaces, U+0085, U+FEFF, the Kelvin sign, long s. */
const EDGE = [
  '\u0085',
  '\ufeff',
  '\u00a0',
  '\u2003',
  '\u3000',
  '\u2028',
  '\r\n',
  'K',
  'ſ',
  "'S",
  "'LL",
  '   \n  ',
  '12345',
  'ÿé',
];

function splitJson(regex: string): Record<string, unknown> {
  return {
    version: '1.0',
    added_tokens: [],
    normalizer: null,
    post_processor: null,
    decoder: null,
    pre_tokenizer: { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
    model: { type: 'BPE', vocab: { a: 0 }, merges: [] },
  };
}

function texts(n: number): string[] {
  const rand = seededRandom(1234);
  const out = EDGE.slice();
  for (let i = 0; i < n; i++) {
    let t = randomText(rand, 1 + Math.floor(rand() * 30));
    if (rand() < 0.5) t = t.replace(/ /g, () => EDGE[Math.floor(rand() * EDGE.length)]);
    out.push(t);
  }
  return out;
}

test('standard pre-tokenizer patterns: RE2 gives the same pieces as the JavaScript RegExp', () => {
  for (const name of ['GPT-2', 'Llama 3 / cl100k', 'Qwen2', 'o200k'])
    assert.ok(KNOWN_LINEAR_PATTERNS.has(PATTERNS[name]), name);
  const inputs = texts(300);
  for (const [name, regex] of Object.entries(PATTERNS)) {
    const js = (new HfTokenizer(splitJson(regex), {}) as unknown as { pre_tokenizer: { pattern: RegExp } })
      .pre_tokenizer.pattern;
    const linear = compileLinear(js.source);
    for (const s of inputs) {
      const want = [...s.matchAll(js)].map((m) => [m.index, m[0]]);
      const got = [...s.matchAll(linear as unknown as RegExp)].map((m) => [m.index, m[0]]);
      assert.deepEqual(got, want, `${name} on ${JSON.stringify(s)}`);
      assert.deepEqual(s.split(linear as unknown as RegExp), s.split(js), `${name} split ${JSON.stringify(s)}`);
      assert.equal(
        s.replaceAll(linear as unknown as RegExp, '<$&>'),
        s.replaceAll(js, '<$&>'),
        `${name} replace ${JSON.stringify(s)}`,
      );
    }
  }
});

test('Llama 3 style tokenizers (Split + ByteLevel) encode exactly as the library alone, in RegExp or RE2', () => {
  const llama = PATTERNS['Llama 3 / cl100k'];
  // The standard pattern stays a RegExp (known linear); a variant of it (digits in pairs) runs in RE2.
  for (const [regex, engine] of [
    [llama, RegExp],
    [llama.replace('{1,3}', '{1,2}'), LinearPattern],
  ] as const) {
    const json = JSON.parse(JSON.stringify(splitJson(regex))) as Record<string, unknown>;
    // A byte-level vocabulary: every byte, so every text encodes.
    const bytes: Record<string, number> = {};
    for (let b = 0; b < 256; b++) bytes[byteChar(b)] = b;
    json['model'] = { type: 'BPE', vocab: { ...bytes, Ġt: 256, he: 257 }, merges: ['Ġ t', 'h e'] };
    json['pre_tokenizer'] = {
      type: 'Sequence',
      pretokenizers: [json['pre_tokenizer'], { type: 'ByteLevel', add_prefix_space: false, use_regex: false }],
    };
    json['decoder'] = { type: 'ByteLevel' };
    const ours = new Tokenizer(json, {});
    const split = (ours as unknown as { hf: { pre_tokenizer: { tokenizers: { pattern: unknown }[] } } }).hf
      .pre_tokenizer;
    assert.ok(split.tokenizers[0].pattern instanceof engine, engine.name);
    const lib = new HfTokenizer(JSON.parse(JSON.stringify(json)) as Record<string, unknown>, {});
    for (const s of texts(200)) {
      assert.deepEqual(ours.encode(s), lib.encode(s).ids, JSON.stringify(s));
      assert.equal(ours.decode(ours.encode(s)), s);
    }
  }
});

/** GPT-2's byte -> printable character map. */
function byteChar(b: number): string {
  const printable = (x: number): boolean => (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
  if (printable(b)) return String.fromCharCode(b);
  let n = 0;
  for (let x = 0; x < b; x++) if (!printable(x)) n++;
  return String.fromCharCode(256 + n);
}

test('a catastrophically backtracking pattern is refused or runs in linear time', () => {
  // Lookaround and backreferences have no linear-time form: refused, naming the file and the pattern.
  assert.throws(
    () => new Tokenizer(splitJson('(a+)+(?!b)'), {}, { source: 'evil/tokenizer.json' }),
    (e: unknown) =>
      isMambaError(e, 'UNSUPPORTED') &&
      /evil\/tokenizer\.json: the pre_tokenizer pattern "\(a\+\)\+\(\?!b\)" uses lookaround/.test((e as Error).message),
  );
  assert.throws(
    () => new Tokenizer(splitJson('(a)\\1'), {}),
    (e: unknown) => isMambaError(e, 'UNSUPPORTED') && /backreference/.test((e as Error).message),
  );
  assert.throws(
    () => new Tokenizer(splitJson('(?<=a)b'), {}),
    (e: unknown) => isMambaError(e, 'UNSUPPORTED'),
  );
  // The rest runs in RE2: a 41-character prompt (exponential for a backtracking engine) in milliseconds.
  for (const evil of ['(a+)+$', '(a+)+b', '(a|aa)+c', '(\\s*)*x', '(.*a){20}']) {
    const tok = new Tokenizer(
      { ...splitJson(evil), model: { type: 'BPE', vocab: { a: 0, '!': 1, b: 2 }, merges: [], unk_token: null } },
      {},
    );
    const t0 = performance.now();
    const prompt = `${'a'.repeat(40)}!`;
    try {
      tok.encode(prompt);
    } catch (e) {
      assert.ok(isMambaError(e), String(e));
    }
    assert.ok(performance.now() - t0 < 2000, `${evil}: ${performance.now() - t0} ms`);
  }
  // Inside a Sequence and in a Replace normalizer too.
  const seq = {
    ...splitJson('x'),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Replace', pattern: { Regex: '(?=a)' }, content: '' }] },
  };
  assert.throws(
    () => new Tokenizer(seq, {}),
    (e: unknown) => isMambaError(e, 'UNSUPPORTED') && /normalizer\.normalizers\[0\]/.test((e as Error).message),
  );
});

test('size, count and nesting limits: CORRUPT_FILE before the library sees the file', async () => {
  const base = JSON.parse(await readFile(join(TINY_BPE_DIR, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  const corrupt = (json: unknown, re: RegExp): void => {
    const t0 = performance.now();
    assert.throws(
      () => new Tokenizer(json, {}, { source: 'x/tokenizer.json' }),
      (e: unknown) =>
        isMambaError(e, 'CORRUPT_FILE') &&
        re.test((e as Error).message) &&
        /x\/tokenizer\.json/.test((e as Error).message),
    );
    assert.ok(performance.now() - t0 < 5000);
  };
  const added = base['added_tokens'] as Record<string, unknown>[];
  // A 50 MB special token (the library would build a 50-million-node trie and abort the heap).
  corrupt(
    { ...base, added_tokens: [...added, { id: 999, content: 'x'.repeat(50 * 2 ** 20), special: true }] },
    /added token .* characters long/,
  );
  corrupt(
    { ...base, added_tokens: Array.from({ length: 2000 }, (_, i) => ({ id: i, content: `${'y'.repeat(1000)}${i}` })) },
    /added tokens hold/,
  );
  corrupt({ ...base, added_tokens: [{ content: 5 }] }, /string "content"/);
  const model = base['model'] as Record<string, unknown>;
  corrupt(
    {
      ...base,
      model: {
        ...model,
        vocab: { ...(model['vocab'] as object), ['z'.repeat(TOKENIZER_LIMITS.tokenChars + 1)]: 5000 },
      },
    },
    /vocabulary token/,
  );
  corrupt({ ...base, model: { ...model, merges: [['a', 7]] } }, /model\.merges/);
  corrupt({ ...base, model: { ...model, merges: 'a b' } }, /must be a list/);
  let deep: unknown = {};
  for (let i = 0; i < 10000; i++) deep = { type: 'Sequence', normalizers: [deep] };
  corrupt({ ...base, normalizer: deep }, /nests more than 32 levels/);
  corrupt(
    { ...base, pre_tokenizer: { type: 'Split', pattern: { Regex: 'a'.repeat(5000) }, behavior: 'Isolated' } },
    /Regex pattern is 5,000 characters/,
  );
  // An object built in JavaScript may even cycle (no JSON file does): still an error, not a hang.
  const cyclic: Record<string, unknown> = { type: 'Sequence' };
  cyclic['normalizers'] = Object.assign([], { self: cyclic });
  corrupt({ ...base, normalizer: cyclic }, /nests more than 32 levels/);
  // Companion files are bounded too.
  assert.throws(
    () => new Tokenizer(base, [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
    (e: unknown) => isMambaError(e, 'CORRUPT_FILE') && /tokenizer_config\.json nests/.test((e as Error).message),
  );
  // The fixture itself still loads.
  assert.ok(new Tokenizer(base, {}).vocabSize > 0);
});

test('a tokenizer.json over the size limit is refused before it is read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mamba-ts-tok-'));
  const file = join(dir, 'tokenizer.json');
  await writeFile(file, '');
  await truncate(file, TOKENIZER_LIMITS.fileBytes + 1); // sparse: no disk used
  await assert.rejects(
    loadTokenizer(dir),
    (e: unknown) => isMambaError(e, 'CORRUPT_FILE') && /bytes, more than the 134,217,728/.test((e as Error).message),
  );
});

test('the patterns kept as RegExps run in linear time on adversarial text', () => {
  const n = 100_000;
  const inputs = [
    ' '.repeat(n) + 'x',
    ' \t'.repeat(n / 2) + 'x',
    'A'.repeat(n) + '1',
    'A\u0301'.repeat(n / 2) + '!',
    '!'.repeat(n) + ' ',
    ' '.repeat(n) + '\n',
    '\n '.repeat(n / 2) + 'x',
    "'".repeat(n) + 's',
    "a'".repeat(n / 2),
  ];
  for (const regex of KNOWN_LINEAR_PATTERNS) {
    const js = (new HfTokenizer(splitJson(regex), {}) as unknown as { pre_tokenizer: { pattern: RegExp } })
      .pre_tokenizer.pattern;
    for (const s of inputs) {
      const t0 = performance.now();
      let pieces = 0;
      for (const _ of s.matchAll(js)) pieces++;
      assert.ok(
        pieces > 0 && performance.now() - t0 < 2000,
        `${regex.slice(0, 30)} on ${JSON.stringify(s.slice(0, 6))}...`,
      );
    }
  }
});
