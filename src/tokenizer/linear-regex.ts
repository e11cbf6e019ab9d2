import { RE2JS } from 're2js';
import { fail, isMambaError } from '../errors.js';
import { TOKENIZER_LIMITS } from './limits.js';

/**
 * The regular expressions of a `tokenizer.json` (Split pre-tokenizers; Replace normalizers,
 * pre-tokenizers and decoders), run in linear time by RE2 (re2js, a pure-JS port) instead of the
 * backtracking engine of JavaScript's RegExp, where a pattern such as `(a+)+$` takes exponential time
 * on a short prompt: an RE2 match takes time proportional to pattern size x text length, whatever
 * the pattern. A time budget could not stop a RegExp mid-match (it runs synchronously) and would
 * still let a hostile file stall every call up to the budget; a linear-time engine removes the
 * problem. Patterns that need backtracking (lookaround, backreferences, atomic groups) are refused,
 * with one exception: `\s+(?!\S)|\s+` at the end of a pattern, the whitespace rule of GPT-2, GPT-4
 * (cl100k, o200k), Llama 3 and Qwen, which is emulated exactly (see `LinearPattern`).
 *
 * Patterns are written in the Oniguruma syntax of the Rust `tokenizers`; `@huggingface/tokenizers`
 * translates them to JavaScript (`\s` as \p{White_Space}, `(?i:'s)` as `'[sS]`, anchors as lookaround),
 * and `toRe2Syntax` takes that translation on to RE2, so both engines see the same pattern.
 */

/** Unicode White_Space, the library's (and Oniguruma's) `\s`; RE2's `\s` is ASCII only. */
const WS = '\\t\\n\\x0B\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}';
const WS_SET = new Set([9, 10, 11, 12, 13, 32, 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000]);
const isWhiteSpace = (c: number): boolean => WS_SET.has(c) || (c >= 0x2000 && c <= 0x200a);
/** The GPT-2 whitespace rule `\s+(?!\S)|\s+` as the library writes it in JavaScript. */
const GPT2_TAIL = '\\p{White_Space}+(?!\\P{White_Space})|\\p{White_Space}+';
const TAIL_GROUP = 'mambaTsWhitespace';
/** The library's JavaScript for Oniguruma's anchors -> RE2's. */
const ANCHORS: [string, string][] = [
  ['(?:(?<![\\s\\S])|(?<=\\n))', '(?m:^)'],
  ['(?:(?=\\n)|(?![\\s\\S]))', '(?m:$)'],
  ['(?<![\\s\\S])', '\\A'],
  ['(?![\\s\\S])', '\\z'],
];

/** Why a pattern cannot run in linear time. */
export class UnsupportedPattern extends Error {}

/**
 * The library's JavaScript form of a pattern (`RegExp.source`, flags `gu`) -> RE2 syntax with the
 * same matches: White_Space spelled out, \uXXXX as \x{XXXX}, anchors as RE2's; lookaround and
 * backreferences have no RE2 form (UnsupportedPattern).
 */
export function toRe2Syntax(js: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < js.length; i++) {
    const c = js[i];
    const rest = (): string => js.slice(i);
    if (!inClass) {
      const anchor = ANCHORS.find(([from]) => rest().startsWith(from));
      if (anchor) {
        out += anchor[1];
        i += anchor[0].length - 1;
        continue;
      }
    }
    if (c === '\\') {
      const n = js[i + 1];
      if (n === undefined) throw new UnsupportedPattern('it ends with a lone backslash');
      if (rest().startsWith('\\p{White_Space}')) {
        out += inClass ? WS : `[${WS}]`;
        i += 14;
        continue;
      }
      if (rest().startsWith('\\P{White_Space}')) {
        if (inClass) throw new UnsupportedPattern('\\S inside a character class');
        out += `[^${WS}]`;
        i += 14;
        continue;
      }
      const u4 = /^\\u([0-9A-Fa-f]{4})/.exec(rest()) ?? /^\\u\{([0-9A-Fa-f]{1,6})\}/.exec(rest());
      if (u4) {
        out += `\\x{${u4[1]}}`;
        i += u4[0].length - 1;
        continue;
      }
      if (/[1-9k]/.test(n)) throw new UnsupportedPattern('a backreference');
      if (/^\\[pP]\{(Alphabetic|Lowercase|Uppercase)\}/.test(rest())) {
        throw new UnsupportedPattern('a Unicode property RE2 lacks (\\w, [[:alpha:]], [[:lower:]] or [[:upper:]])');
      }
      out += c + n;
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (js[i + 1] === '^') {
        out += '^';
        i++;
      }
      if (js[i + 1] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (c === '(' && js[i + 1] === '?') {
      if (/^\(\?(<[=!]|[=!>])/.test(rest())) throw new UnsupportedPattern('lookaround or an atomic group');
      const named = /^\(\?<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest());
      if (named) {
        out += `(?P<${named[1]}>`;
        i += named[0].length - 1;
        continue;
      }
    }
    out += c;
  }
  return out;
}

/**
 * The linear-time form of a pattern the library compiled (its `RegExp.source`); UnsupportedPattern
 * says why there is none.
 */
export function compileLinear(js: string): LinearPattern {
  if (js.length > 4 * TOKENIZER_LIMITS.patternChars) {
    throw new UnsupportedPattern(`it is ${js.length} characters long, more than ${4 * TOKENIZER_LIMITS.patternChars}`);
  }
  const tail = js === GPT2_TAIL || (js.endsWith(`|${GPT2_TAIL}`) && topLevelAt(js, js.length - GPT2_TAIL.length - 1));
  let source: string;
  if (tail) {
    const head = js === GPT2_TAIL ? '' : `(?:${toRe2Syntax(js.slice(0, js.length - GPT2_TAIL.length - 1))})|`;
    source = `${head}(?P<${TAIL_GROUP}>[${WS}]+)|[${WS}]+`;
  } else source = toRe2Syntax(js);
  let re: RE2JS;
  try {
    re = RE2JS.compile(source);
  } catch (e) {
    if (isMambaError(e)) throw e;
    throw new UnsupportedPattern((e as Error).message.replace(/^error parsing regexp: /, ''));
  }
  return new LinearPattern(js, re, tail);
}

/** Whether index `at` of the pattern is outside every group and class (a top-level `|`). */
function topLevelAt(pattern: string, at: number): boolean {
  let depth = 0,
    inClass = false;
  for (let i = 0; i < at; i++) {
    const c = pattern[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') {
      inClass = true;
      if (pattern[i + 1] === ']') i++;
      else if (pattern.slice(i + 1, i + 3) === '^]') i += 2;
    } else if (c === '(') depth++;
    else if (c === ')') depth--;
  }
  return depth === 0 && !inClass;
}

/**
 * A RegExp stand-in for the library: String.prototype.match / matchAll / split / replace(All) call
 * these methods (it looks like a global RegExp to them), and every match is found by RE2.
 *
 * The GPT-2 whitespace rule: RE2 matches a whitespace run W (the named group) where JavaScript tries
 * `\s+(?!\S)` first; when W is followed by a non-space, the backtracking engine gives back W's last
 * character (W minus one still ends before a space, so the lookahead holds), or, for a single
 * character, falls to `\s+`, which matches that character: so the match is W minus one character
 * when W has two or more, and the search goes on from there.
 */
export class LinearPattern {
  readonly flags = 'gu';
  readonly global = true;
  readonly unicode = true;
  lastIndex = 0;

  constructor(
    readonly source: string,
    private readonly re: RE2JS,
    private readonly whitespaceTail: boolean,
  ) {}

  /** Every match: [start, end, captured groups]. */
  private *matches(s: string): Generator<[number, number, (string | undefined)[]]> {
    const m = this.re.matcher(s);
    const groups = this.re.groupCount() - (this.whitespaceTail ? 1 : 0);
    let from = 0;
    while (from <= s.length && m.find(from)) {
      const start = m.start();
      let end = m.end();
      if (
        this.whitespaceTail &&
        m.start(TAIL_GROUP) >= 0 &&
        end < s.length &&
        !isWhiteSpace(s.charCodeAt(end)) &&
        end - start >= 2
      )
        end--;
      const caps: (string | undefined)[] = [];
      for (let g = 1; g <= groups; g++) caps.push(m.group(g) ?? undefined);
      yield [start, end, caps];
      // After an empty match, move on by one character (a whole surrogate pair), as RegExp does.
      from = end > start ? end : end + (end < s.length && isHighSurrogateAt(s, end) ? 2 : 1);
    }
  }

  *[Symbol.matchAll](s: string): Generator<RegExpMatchArray> {
    for (const [start, end, caps] of this.matches(s)) {
      const a = [s.slice(start, end), ...caps] as RegExpMatchArray;
      a.index = start;
      a.input = s;
      yield a;
    }
  }

  [Symbol.match](s: string): RegExpMatchArray | null {
    const all = [...this.matches(s)].map(([a, b]) => s.slice(a, b));
    return all.length ? (all as RegExpMatchArray) : null;
  }

  /** As `String.prototype.split` with a RegExp (captured groups included). */
  [Symbol.split](s: string, limit?: number): string[] {
    const lim = limit === undefined ? 2 ** 32 - 1 : limit >>> 0;
    const out: string[] = [];
    if (lim === 0) return out;
    let p = 0;
    for (const [start, end, caps] of this.matches(s)) {
      if (start >= s.length) break;
      if (end === p || (end === start && start === 0)) continue;
      out.push(s.slice(p, start));
      if (out.length === lim) return out;
      for (const c of caps) {
        out.push(c as string);
        if (out.length === lim) return out;
      }
      p = end;
    }
    out.push(s.slice(p));
    return out;
  }

  /** As `String.prototype.replaceAll` with a global RegExp ($$, $&, $1..$9 in a string replacement). */
  [Symbol.replace](s: string, replacement: string | ((match: string, ...rest: unknown[]) => string)): string {
    let out = '',
      p = 0;
    for (const [start, end, caps] of this.matches(s)) {
      const match = s.slice(start, end);
      out += s.slice(p, start);
      out +=
        typeof replacement === 'function'
          ? replacement(match, ...caps, start, s)
          : replacement.replace(/\$([$&]|[1-9])/g, (_, k: string) =>
              k === '$' ? '$' : k === '&' ? match : (caps[Number(k) - 1] ?? ''),
            );
      p = end;
    }
    return out + s.slice(p);
  }

  test(s: string): boolean {
    return !this.matches(s).next().done;
  }
}

function isHighSurrogateAt(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  return c >= 0xd800 && c <= 0xdbff && i + 1 < s.length;
}

/**
 * The pre-tokenizer patterns of the standard tokenizers (GPT-2 / GPT-NeoX, GPT-4's cl100k as Llama 3
 * uses it, Qwen2, GPT-4o's o200k), as tokenizer.json writes them. These stay JavaScript RegExps: each
 * alternative is one quantified character class (the only lookahead, `(?!\S)`, checks one character),
 * so a backtracking engine runs them in linear time too (200,000 characters of adversarial text:
 * spaces, marks, punctuation runs, in at most ~0.1 s), and about 15x faster than re2js (100 kB of
 * English: 46 ms against 725 ms). Every other pattern runs in RE2.
 */
const CONTRACTIONS = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
const LETTERS_UPPER = '[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]';
const LETTERS_LOWER = '[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]';
export const KNOWN_LINEAR_PATTERNS: ReadonlySet<string> = new Set([
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  `[^\\r\\n\\p{L}\\p{N}]?${LETTERS_UPPER}*${LETTERS_LOWER}+${CONTRACTIONS}?|[^\\r\\n\\p{L}\\p{N}]?${LETTERS_UPPER}+${LETTERS_LOWER}*` +
    `${CONTRACTIONS}?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
]);

interface Component {
  pattern?: unknown;
  config?: { pattern?: { Regex?: unknown } };
  normalizers?: unknown[];
  tokenizers?: unknown[];
  decoders?: unknown[];
}

/**
 * Swaps every Regex pattern of a constructed `@huggingface/tokenizers` Tokenizer (normalizer,
 * pre-tokenizer, decoder, and the members of their Sequences) for its LinearPattern; UNSUPPORTED
 * names the file, the component and the reason when a pattern has no linear-time form. String
 * patterns (escaped literals) stay RegExps: they have no quantifier; so do KNOWN_LINEAR_PATTERNS.
 */
export function useLinearPatterns(
  hf: { normalizer?: unknown; pre_tokenizer?: unknown; decoder?: unknown },
  file: string,
): void {
  const visit = (c: unknown, where: string): void => {
    // The library's components are callable objects (functions).
    if ((typeof c !== 'object' && typeof c !== 'function') || c === null) return;
    const comp = c as Component;
    const regex = comp.config?.pattern?.Regex;
    if (comp.pattern instanceof RegExp && typeof regex === 'string' && !KNOWN_LINEAR_PATTERNS.has(regex)) {
      try {
        comp.pattern = compileLinear(comp.pattern.source);
      } catch (e) {
        if (!(e instanceof UnsupportedPattern)) throw e;
        const shown = regex.length > 80 ? `${JSON.stringify(regex.slice(0, 80))}...` : JSON.stringify(regex);
        fail(
          'UNSUPPORTED',
          `${file}: the ${where} pattern ${shown} uses ${e.message}; mamba-ts runs tokenizer patterns in linear ` +
            'time (RE2), where a backtracking pattern could take exponential time on a short text',
          { file, pattern: regex },
        );
      }
    }
    for (const [key, list] of [
      ['normalizers', comp.normalizers],
      ['pretokenizers', comp.tokenizers],
      ['decoders', comp.decoders],
    ] as const) {
      if (Array.isArray(list)) list.forEach((x, i) => visit(x, `${where}.${key}[${i}]`));
    }
  };
  visit(hf.normalizer, 'normalizer');
  visit(hf.pre_tokenizer, 'pre_tokenizer');
  visit(hf.decoder, 'decoder');
}
