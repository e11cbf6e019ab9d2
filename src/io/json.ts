/**
 * Parsing untrusted JSON (checkpoint headers, config.json, shard indexes, state metadata) with
 * bounds checked before JSON.parse sees the text: its size, and the nesting depth of arrays and
 * objects, measured by one linear scan that counts brackets outside strings. JSON.parse recurses per
 * level, so `[[[[…]]]]` a million deep would otherwise end in a RangeError with a stack trace instead
 * of a MambaError. Browser-safe.
 */
import { fail } from '../errors.js';

/** Deepest nesting accepted: a config.json or a safetensors header is 2 or 3 levels deep. */
export const MAX_JSON_DEPTH = 64;

/** config.json, a shard index, tokenizer companions: a 70B model's index is a few hundred KB. */
export const MAX_CONFIG_JSON_BYTES = 16 * 1024 * 1024;

export interface JsonLimits {
  /** Most bytes (UTF-8) or characters (a string given) accepted. */
  readonly maxBytes: number;
  /** Deepest nesting of arrays and objects; MAX_JSON_DEPTH unless given. */
  readonly maxDepth?: number;
  /**
   * Refuse a top-level object naming one key twice (JSON.parse keeps the last copy silently): for
   * formats whose reference reader rejects it, like safetensors headers.
   */
  readonly uniqueTopLevelKeys?: boolean;
}

/**
 * Parses `input` (UTF-8 bytes or text) as JSON after checking it against `limits`; `what` names
 * the file in messages (e.g. `/models/x/config.json`). Every failure is CORRUPT_FILE naming the file,
 * the limit and its value.
 */
export function parseUntrustedJson(input: Uint8Array | string, what: string, limits: JsonLimits): unknown {
  const maxDepth = limits.maxDepth ?? MAX_JSON_DEPTH;
  const size = typeof input === 'string' ? input.length : input.byteLength;
  if (size > limits.maxBytes) {
    fail('CORRUPT_FILE', `${what} has ${size} bytes, more than the ${limits.maxBytes}-byte limit for this file`, {
      file: what,
      size,
      limit: limits.maxBytes,
    });
  }
  let text: string;
  if (typeof input === 'string') text = input;
  else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(input);
    } catch {
      return fail('CORRUPT_FILE', `${what} is not valid UTF-8 JSON`, { file: what });
    }
  }
  const depth = nestingDepth(text, maxDepth);
  if (depth > maxDepth) {
    fail(
      'CORRUPT_FILE',
      `${what} nests arrays and objects more than ${maxDepth} levels deep (the limit for JSON files)`,
      { file: what, limit: maxDepth },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text) as unknown;
  } catch (e) {
    return fail('CORRUPT_FILE', `${what} is not valid JSON (${e instanceof Error ? e.message : String(e)})`, {
      file: what,
    });
  }
  if (limits.uniqueTopLevelKeys) {
    const dup = duplicateTopLevelKey(text);
    if (dup !== undefined) {
      fail('CORRUPT_FILE', `${what} lists the key ${JSON.stringify(dup)} twice; expected each key once`, {
        file: what,
        key: dup,
      });
    }
  }
  return parsed;
}

/**
 * The first key named twice in the top-level object of valid JSON `text`, else undefined. A key is
 * a string at depth 1 right after `{` or `,`.
 */
export function duplicateTopLevelKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0,
    expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const start = i;
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(start, i + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth === 1) expectKey = c === 0x7b;
    } else if (c === 0x5d || c === 0x7d) depth--;
    else if (c === 0x2c && depth === 1) expectKey = true;
  }
  return undefined;
}

/**
 * The deepest bracket nesting of `text`, counting `[` and `{` outside strings (a backslash escapes
 * the next character inside one); stops early once past `stopAbove`. Unbalanced text is left for
 * JSON.parse to report.
 */
export function nestingDepth(text: string, stopAbove = Infinity): number {
  let depth = 0,
    deepest = 0,
    inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > stopAbove) return deepest;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return deepest;
}

/**
 * A value from untrusted JSON for a message: JSON text cut to `max` characters. Never throws:
 * JSON.stringify recurses per level, so a value nested thousands deep (parsed elsewhere, e.g. by a
 * browser's `Response.json()`) is described instead of overflowing the stack.
 */
export function showJson(v: unknown, max = 80): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = Array.isArray(v) ? 'a deeply nested array' : 'a deeply nested object';
  }
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}
