import { fail } from '../errors.js';

/**
 * Bounds on a `tokenizer.json` before it reaches `@huggingface/tokenizers`, so a damaged or hostile
 * file is a CORRUPT_FILE error instead of a heap abort or a hang. The library builds one trie node per
 * character of every added token (and, for Unigram models, of every vocabulary token) and copies the
 * vocabulary into maps: a 50 MB special token alone exhausts the heap. Each limit is far above every
 * published tokenizer (the largest, Gemma's, has 262,144 tokens, about 2 M characters in all, 33 MB
 * of JSON; special tokens are tens of characters; files nest about 6 levels deep).
 */
export const TOKENIZER_LIMITS = {
  /** tokenizer.json on disk. */
  fileBytes: 128 * 2 ** 20,
  /** tokenizer_config.json, special_tokens_map.json, generation_config.json on disk. */
  companionFileBytes: 16 * 2 ** 20,
  /** Objects and arrays inside one another. */
  depth: 32,
  /** Vocabulary entries (model.vocab). */
  vocabSize: 2 ** 22,
  /** Characters of one vocabulary or added token. */
  tokenChars: 4096,
  /** Characters of all vocabulary tokens together. */
  vocabChars: 2 ** 24,
  /** Entries of added_tokens. */
  addedTokens: 2 ** 20,
  /** Characters of all added tokens together (trie nodes). */
  addedChars: 2 ** 20,
  /** BPE merge rules. */
  merges: 2 ** 22,
  /** Characters of one Regex / String pattern (Split, Replace). */
  patternChars: 4096,
} as const;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Nesting depth of a parsed JSON value, counted without recursion; stops past `limit`. */
export function nestingDepth(value: unknown, limit: number): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    const depth = d + 1;
    if (depth > max) max = depth;
    if (max > limit) return max;
    for (const child of Object.values(v)) if (typeof child === 'object' && child !== null) stack.push([child, depth]);
  }
  return max;
}

/** Throws CORRUPT_FILE when a parsed companion file (tokenizer_config.json, ...) nests too deep. */
export function checkJsonDepth(value: unknown, file: string): void {
  const depth = nestingDepth(value, TOKENIZER_LIMITS.depth);
  if (depth > TOKENIZER_LIMITS.depth) {
    fail('CORRUPT_FILE', `${file} nests more than ${TOKENIZER_LIMITS.depth} levels deep; no tokenizer file does`, {
      file,
      depth,
    });
  }
}

/** Checks a parsed tokenizer.json against TOKENIZER_LIMITS (see above); CORRUPT_FILE names the file and the part. */
export function checkTokenizerJsonLimits(json: Record<string, unknown>, file: string): void {
  const L = TOKENIZER_LIMITS;
  checkJsonDepth(json, file);
  const tooMany = (what: string, n: number, limit: number): never =>
    fail(
      'CORRUPT_FILE',
      `${file}: ${what} has ${n.toLocaleString('en-US')} entries, more than the ${limit.toLocaleString('en-US')} mamba-ts accepts`,
      { file },
    );
  const tokenTooLong = (where: string, token: string): never =>
    fail(
      'CORRUPT_FILE',
      `${file}: ${where} ${JSON.stringify(token.slice(0, 20))}... is ${token.length.toLocaleString('en-US')} characters long, ` +
        `more than the ${L.tokenChars} mamba-ts accepts for one token`,
      { file },
    );

  // Patterns of the normalizer, pre-tokenizer and decoder (Split, Replace), at any depth of a Sequence.
  const stack: unknown[] = [json['normalizer'], json['pre_tokenizer'], json['decoder']];
  const seen = new Set<object>(); // objects built in JavaScript (not parsed) may share parts or cycle
  while (stack.length) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null || seen.has(v)) continue;
    seen.add(v);
    for (const [k, x] of Object.entries(v)) {
      if ((k === 'Regex' || k === 'String') && typeof x === 'string' && x.length > L.patternChars) {
        fail(
          'CORRUPT_FILE',
          `${file}: a ${k} pattern is ${x.length.toLocaleString('en-US')} characters long, more than the ` +
            `${L.patternChars} mamba-ts accepts`,
          { file },
        );
      }
      if (typeof x === 'object' && x !== null) stack.push(x);
    }
  }

  const added = json['added_tokens'];
  if (Array.isArray(added)) {
    if (added.length > L.addedTokens) tooMany('added_tokens', added.length, L.addedTokens);
    let chars = 0;
    for (const t of added) {
      const content = isObj(t) ? t['content'] : undefined;
      if (!isObj(t) || typeof content !== 'string' || !Number.isSafeInteger(t['id']) || (t['id'] as number) < 0) {
        fail(
          'CORRUPT_FILE',
          `${file}: each added_tokens entry needs a string "content" and a non-negative integer "id"`,
          { file },
        );
      }
      if (content.length > L.tokenChars) tokenTooLong('added token', content);
      chars += content.length;
    }
    if (chars > L.addedChars) {
      fail(
        'CORRUPT_FILE',
        `${file}: the added tokens hold ${chars.toLocaleString('en-US')} characters in all, more than the ` +
          `${L.addedChars.toLocaleString('en-US')} mamba-ts accepts`,
        { file },
      );
    }
  }

  const model = json['model'];
  if (isObj(model)) {
    const vocab = model['vocab'];
    // BPE / WordPiece: {token: id}; Unigram: [[token, score], ...].
    const tokens = Array.isArray(vocab)
      ? vocab.map((e) => (Array.isArray(e) ? e[0] : e))
      : isObj(vocab)
        ? Object.keys(vocab)
        : [];
    if (tokens.length > L.vocabSize) tooMany('model.vocab', tokens.length, L.vocabSize);
    let chars = 0;
    for (const t of tokens) {
      if (typeof t !== 'string')
        fail('CORRUPT_FILE', `${file}: model.vocab holds a token that is not a string`, { file });
      if (t.length > L.tokenChars) tokenTooLong('vocabulary token', t);
      chars += t.length;
    }
    if (chars > L.vocabChars) {
      fail(
        'CORRUPT_FILE',
        `${file}: the vocabulary holds ${chars.toLocaleString('en-US')} characters in all, more than the ` +
          `${L.vocabChars.toLocaleString('en-US')} mamba-ts accepts`,
        { file },
      );
    }
    const merges = model['merges'];
    if (merges !== undefined && merges !== null) {
      if (!Array.isArray(merges)) fail('CORRUPT_FILE', `${file}: model.merges must be a list`, { file });
      if (merges.length > L.merges) tooMany('model.merges', merges.length, L.merges);
      for (const m of merges) {
        const ok =
          typeof m === 'string'
            ? m.length <= 2 * L.tokenChars + 1
            : Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string' && x.length <= L.tokenChars);
        if (!ok)
          fail(
            'CORRUPT_FILE',
            `${file}: model.merges holds ${describeMerge(m)}; each merge is "left right" or [left, right]`,
            { file },
          );
      }
    }
  }
}

function describeMerge(m: unknown): string {
  const s = JSON.stringify(m) ?? String(m);
  return s.length > 40 ? `${s.slice(0, 40)}... (${s.length} characters)` : s;
}
