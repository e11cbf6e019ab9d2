import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { isMambaError } from '../../src/errors.js';
import { cleanUpTokenization } from '../../src/tokenizer/cleanup.js';
import { loadTokenizer } from '../../src/tokenizer/node.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { TINY_BPE_DIR } from './fixtures.js';
import { randomText, seededRandom } from './random-text.js';

/**
 * Expected ids, derived by hand from the merge ranks above (at each step merge the lowest-ranked pair
 * present), and checked with an independent reference (openai/gpt-2 encoder.py's bpe() in Python):
 * - "hello": h e l l o -> (h,e) rank 2 -> (l,l) 4 -> (he,ll) 6 -> (hell,o) 7 = [hello 263]; `e ll` (5)
 *   never applies because h+e ranks first.
 * - " world" = Ġworld: Ġ+w 8, o+r 9, Ġw+or 10, l+d 11, Ġwor+ld 12 = [268].
 * - "Hello": H e l l o -> (l,l) -> (e,ll) = [H 73, ell 261, o 112].
 * - "café": c a f + é's bytes C3 A9 = Ã © -> merged = [100, 98, 103, 269].
 * - "😀" = F0 9F 98 80 = ð Ł ĺ Ģ -> (ð,Ł) = [270, 1+0x98, 1+0x80]; " 😀" adds Ġ+ðŁ (rank 16) = [272, 153, 129].
 * - "中" = E4 B8 AD -> (ä,¸) = [271, 1+0xAD].
 */
const TINY_CASES: readonly [string, number[]][] = [
  ['hello world', [263, 268]],
  [' the', [259]],
  ['the', [117, 258]],
  ['ell', [261]],
  ['Hello, world!\n', [73, 261, 112, 45, 268, 34, 11]],
  ['café', [100, 98, 103, 269]],
  ['😀', [270, 153, 129]],
  [' 😀', [272, 153, 129]],
  ['中', [271, 174]],
  ['hi<|endoftext|>', [105, 106, 0]],
  ['', []],
];

async function tinyFiles(): Promise<{ json: unknown; config: Record<string, unknown> }> {
  return {
    json: JSON.parse(await readFile(join(TINY_BPE_DIR, 'tokenizer.json'), 'utf8')) as unknown,
    config: JSON.parse(await readFile(join(TINY_BPE_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>,
  };
}

function assertMambaError(fn: () => unknown, code: Parameters<typeof isMambaError>[1], pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isMambaError(e, code), `expected MambaError ${code}, got ${String(e)}`);
    if (pattern !== undefined) assert.match(e.message, pattern);
    return true;
  });
}

async function assertRejects(
  p: Promise<unknown>,
  code: Parameters<typeof isMambaError>[1],
  pattern?: RegExp,
): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isMambaError(e, code), `expected MambaError ${code}, got ${String(e)}`);
    if (pattern !== undefined) assert.match(e.message, pattern);
    return true;
  });
}

test('tiny byte-level BPE: encode gives the hand-derived ids, decode gives the text back', async () => {
  const tok = await loadTokenizer(TINY_BPE_DIR);
  for (const [text, ids] of TINY_CASES) {
    assert.deepEqual(tok.encode(text), ids, `encode(${JSON.stringify(text)})`);
    assert.equal(tok.decode(ids), text, `decode(${JSON.stringify(ids)})`);
  }
});

test('tiny byte-level BPE: vocabulary and special-token roles from tokenizer_config', async () => {
  const tok = await loadTokenizer(TINY_BPE_DIR);
  assert.equal(tok.vocabSize, 1 + 256 + 16);
  assert.equal(tok.eosTokenId, 0); // eos_token given as {"__type": "AddedToken", "content": ...}
  assert.equal(tok.bosTokenId, 0); // bos_token given as a string
  assert.equal(tok.padTokenId, undefined);
  assert.deepEqual(tok.stopTokenIds, [0]);
  assert.deepEqual(tok.specialTokenIds, [0]);
  assert.equal(tok.cleanUpTokenizationSpaces, false);
  assert.equal(tok.idToToken(259), 'Ġthe');
  assert.equal(tok.tokenToId('Ġthe'), 259);
  assert.equal(tok.idToToken(1 + 0x20), 'Ġ');
  assert.equal(tok.idToToken(273), undefined);
  assert.equal(tok.tokenToId('not a token'), undefined);
  // No BOS: GPT-NeoX style tokenizers add nothing around a text.
  assert.deepEqual(tok.encode(' the', { addSpecialTokens: true }), [259]);
  assert.equal(tok.decode([105, 106, 0, 259], { skipSpecialTokens: true }), 'hi the');
  assert.equal(tok.decode([105, 106, 0, 259]), 'hi<|endoftext|> the');
});

test('without any config, <|endoftext|> is EOS and BOS (GPT-2 / GPT-NeoX defaults)', async () => {
  const { json } = await tinyFiles();
  const tok = new Tokenizer(json);
  assert.equal(tok.eosTokenId, 0);
  assert.equal(tok.bosTokenId, 0);
  assert.equal(tok.padTokenId, undefined);
  assert.deepEqual(tok.encode('hello'), [263]);
  // null names no token: no default applies.
  const noBos = new Tokenizer(json, { bos_token: null, pad_token: null });
  assert.deepEqual([noBos.bosTokenId, noBos.eosTokenId, noBos.padTokenId], [undefined, 0, undefined]);
});

test('add_bos_token / add_eos_token in tokenizer_config add BOS/EOS unless addSpecialTokens is false', async () => {
  const { json } = await tinyFiles();
  const tok = new Tokenizer(json, {
    bos_token: '<|endoftext|>',
    eos_token: '<|endoftext|>',
    add_bos_token: true,
    add_eos_token: true,
  });
  assert.deepEqual(tok.encode('hello'), [0, 263, 0]);
  assert.deepEqual(tok.encode('hello', { addSpecialTokens: false }), [263]);
  const bosOnly = new Tokenizer(json, { add_bos_token: true, add_eos_token: false });
  assert.deepEqual(bosOnly.encode('hello'), [0, 263]);
});

test('special_tokens_map and generation_config fill roles the tokenizer_config leaves out', async () => {
  const { json } = await tinyFiles();
  const tok = new Tokenizer(
    json,
    {},
    {
      specialTokensMap: { eos_token: { content: 'Ġthe', lstrip: false }, pad_token: 'hello' },
      generationConfig: { bos_token_id: 5, eos_token_id: [259, 0, 300] },
    },
  );
  assert.equal(tok.eosTokenId, 259);
  assert.equal(tok.padTokenId, 263);
  assert.equal(tok.bosTokenId, 5);
  assert.deepEqual(tok.stopTokenIds, [259, 0, 300]);
  // tokenizer_config wins over special_tokens_map.
  const fromConfig = new Tokenizer(json, { eos_token: 'hello' }, { specialTokensMap: { eos_token: 'Ġthe' } });
  assert.equal(fromConfig.eosTokenId, 263);
});

test('bad special-token entries are CORRUPT_FILE errors naming the file and field', async () => {
  const { json } = await tinyFiles();
  assertMambaError(
    () => new Tokenizer(json, { eos_token: '</s>' }),
    'CORRUPT_FILE',
    /tokenizer_config\.json: eos_token "<\/s>" is not in/,
  );
  assertMambaError(() => new Tokenizer(json, { eos_token: 42 }), 'CORRUPT_FILE', /eos_token must be a token string/);
  assertMambaError(
    () => new Tokenizer(json, { add_bos_token: 'yes' }),
    'CORRUPT_FILE',
    /add_bos_token must be true or false/,
  );
  assertMambaError(
    () => new Tokenizer(json, {}, { generationConfig: { eos_token_id: 'x' } }),
    'CORRUPT_FILE',
    /generation_config\.json/,
  );
  assertMambaError(
    () => new Tokenizer(json, {}, { generationConfig: { pad_token_id: 999 } }),
    'CORRUPT_FILE',
    /outside/,
  );
  assertMambaError(() => new Tokenizer(json, [1, 2]), 'CORRUPT_FILE', /tokenizer_config\.json must hold a JSON object/);
});

test('decode rejects ids outside [0, vocabSize) with TOKEN_OUT_OF_RANGE', async () => {
  const tok = await loadTokenizer(TINY_BPE_DIR);
  assertMambaError(() => tok.decode([263, 273]), 'TOKEN_OUT_OF_RANGE', /token id 273 at position 1 .*\[0, 273\)/);
  assertMambaError(() => tok.decode([-1]), 'TOKEN_OUT_OF_RANGE');
  assertMambaError(() => tok.decode([1.5]), 'TOKEN_OUT_OF_RANGE');
  assert.equal(tok.decode([]), '');
});

test('clean_up_tokenization_spaces from the config applies transformers clean-up, as tokenizers.js does', async () => {
  const { json, config } = await tinyFiles();
  const tok = new Tokenizer(json, { ...config, clean_up_tokenization_spaces: true });
  const ids = tok.encode("Hello , world . I do n't know , he 's here !");
  assert.equal(tok.decode(ids), "Hello, world. I don't know, he's here!");
  assert.equal(tok.decode(ids, { cleanUpTokenizationSpaces: false }), "Hello , world . I do n't know , he 's here !");
  // Reference: the clean-up built into @huggingface/tokenizers, on random text.
  const hf = new HfTokenizer(json as object, config);
  const rand = seededRandom(7);
  for (let i = 0; i < 300; i++) {
    const text = randomText(rand, 20);
    const hfIds = hf.encode(text).ids;
    if (hfIds.length === 0) continue;
    assert.equal(
      cleanUpTokenization(text),
      hf.decode(hfIds, { clean_up_tokenization_spaces: true }),
      JSON.stringify(text),
    );
  }
});

test('loadTokenizer: missing tokenizer.json is FILE_NOT_FOUND naming the file and directory', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mamba-ts-tok-'));
  await assertRejects(
    loadTokenizer(dir),
    'FILE_NOT_FOUND',
    new RegExp(`no tokenizer\\.json in ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
  );
  await assertRejects(loadTokenizer(join(dir, 'does-not-exist')), 'FILE_NOT_FOUND', /tokenizer\.json/);
});

test('loadTokenizer: invalid JSON or a non-tokenizer is CORRUPT_FILE', async () => {
  const root = await mkdtemp(join(tmpdir(), 'mamba-ts-tok-'));
  const write = async (name: string, files: Record<string, string>): Promise<string> => {
    const dir = join(root, name);
    await mkdir(dir);
    for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
    return dir;
  };
  const tinyJson = await readFile(join(TINY_BPE_DIR, 'tokenizer.json'), 'utf8');
  await assertRejects(
    loadTokenizer(await write('truncated', { 'tokenizer.json': tinyJson.slice(0, 100) })),
    'CORRUPT_FILE',
    /tokenizer\.json is not valid JSON/,
  );
  await assertRejects(
    loadTokenizer(await write('not-tokenizer', { 'tokenizer.json': '{"hello": 1}' })),
    'CORRUPT_FILE',
    /is not a Hugging Face tokenizer/,
  );
  await assertRejects(
    loadTokenizer(await write('array', { 'tokenizer.json': '[1, 2]' })),
    'CORRUPT_FILE',
    /must hold a JSON object/,
  );
  await assertRejects(
    loadTokenizer(await write('bad-config', { 'tokenizer.json': tinyJson, 'tokenizer_config.json': '{oops' })),
    'CORRUPT_FILE',
    /tokenizer_config\.json is not valid JSON/,
  );
  const unknownModel = JSON.stringify({ ...(JSON.parse(tinyJson) as object), model: { type: 'Mystery' } });
  await assertRejects(
    loadTokenizer(await write('unknown-model', { 'tokenizer.json': unknownModel })),
    'UNSUPPORTED',
    /Mystery/,
  );
  // Companion files are optional; generation_config alone is enough for EOS.
  const dir = await write('companions', {
    'tokenizer.json': tinyJson,
    'generation_config.json': JSON.stringify({ eos_token_id: 263 }),
  });
  assert.equal((await loadTokenizer(dir)).eosTokenId, 263);
});

test('the browser-facing tokenizer modules import nothing from node:', async () => {
  // Follow relative imports from the compiled index; node.js (file loading) is the one Node-only module.
  const dir = fileURLToPath(new URL('../../src/tokenizer/', import.meta.url));
  const seen = new Set<string>();
  const visit = async (file: string): Promise<void> => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = await readFile(file, 'utf8');
    for (const [, spec] of source.matchAll(/^(?:import|export)\s[^;]*?from\s+'([^']+)'/gm)) {
      assert.ok(!spec!.startsWith('node:'), `${file} imports ${spec}`);
      if (spec!.startsWith('.')) await visit(join(dirname(file), spec!));
    }
  };
  await visit(join(dir, 'index.js'));
  assert.ok(seen.size >= 8, `followed ${seen.size} modules`);
  assert.ok(![...seen].some((f) => f.endsWith('/node.js')));
});
