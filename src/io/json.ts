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
    fail('CORRUPT_FILE', `${what} has ${size} bytes, more than the ${limits.maxBytes}-byte limit for this file`, { file: what, size, limit: limits.maxBytes });
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
    fail('CORRUPT_FILE', `${what} nests arrays and objects more than ${maxDepth} levels deep (the limit for JSON files)`, { file: what, limit: maxDepth });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    return fail('CORRUPT_FILE', `${what} is not valid JSON (${e instanceof Error ? e.message : String(e)})`, { file: what });
  }
}

/**
 * The deepest bracket nesting of `text`, counting `[` and `{` outside strings (a backslash escapes
 * the next character inside one); stops early once past `stopAbove`. Unbalanced text is left for
 * JSON.parse to report.
 */
export function nestingDepth(text: string, stopAbove = Infinity): number {
  let depth = 0, deepest = 0, inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
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
