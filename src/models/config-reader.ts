import { fail } from '../errors.js';
import { MAX_JSON_DEPTH } from '../io/json.js';

/**
 * Reading the fields of an untrusted config.json: typed getters that name the key and the file in
 * every error, transformers' encoding of non-finite floats, and the value shapes both layouts share
 * (dt_rank, [min, max] pairs).
 */

/** Converts transformers' JSON encodings of non-finite floats (`{"__float__": "Infinity"}`) to numbers. */
export function reviveFloats(v: unknown, depth = 0): unknown {
  // A parsed object from anywhere (a browser's fetch) may nest deeper than the stack allows.
  if (depth > MAX_JSON_DEPTH) {
    fail(
      'CORRUPT_FILE',
      `config.json nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep (the limit for JSON files)`,
      { limit: MAX_JSON_DEPTH },
    );
  }
  if (Array.isArray(v)) return v.map((x) => reviveFloats(x, depth + 1));
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === '__float__' && typeof o.__float__ === 'string') {
      const s = o.__float__;
      if (s === 'Infinity') return Infinity;
      if (s === '-Infinity') return -Infinity;
      if (s === 'NaN') return NaN;
      const n = Number(s);
      if (Number.isNaN(n)) fail('CORRUPT_FILE', `config.json: unreadable float ${JSON.stringify(s)}`);
      return n;
    }
    const out: Record<string, unknown> = {};
    for (const k of keys) out[k] = reviveFloats(o[k], depth + 1);
    return out;
  }
  return v;
}

/** Reads config fields with type checks that name the key and the file. */
export class ConfigReader {
  constructor(
    readonly raw: Record<string, unknown>,
    readonly where: string,
  ) {}

  /** An option this model type has that mamba-ts does not implement: an error naming it and what is supported. */
  unsupported(what: string, supported: string): never {
    const mt = typeof this.raw.model_type === 'string' ? ` for ${this.raw.model_type}` : '';
    return fail('UNSUPPORTED', `${this.where}: ${what} is not supported${mt} (supported: ${supported})`);
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  int(key: string, dflt?: number): number {
    const v = this.raw[key] ?? dflt;
    if (v === undefined) fail('CORRUPT_FILE', `${this.where}: missing required key "${key}" (an integer)`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      fail('CORRUPT_FILE', `${this.where}: "${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  num(key: string, dflt?: number): number {
    const v = this.raw[key] ?? dflt;
    if (v === undefined) fail('CORRUPT_FILE', `${this.where}: missing required key "${key}" (a number)`);
    if (typeof v !== 'number') {
      fail('CORRUPT_FILE', `${this.where}: "${key}" must be a number, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.raw[key] ?? dflt;
    if (typeof v !== 'boolean') {
      fail('CORRUPT_FILE', `${this.where}: "${key}" must be true or false, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  str(key: string, dflt?: string): string {
    const v = this.raw[key] ?? dflt;
    if (typeof v !== 'string') {
      fail('CORRUPT_FILE', `${this.where}: "${key}" must be a string, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  /** A token id, or a list of them (first taken), or absent. */
  tokenId(key: string): number | undefined {
    const v = this.raw[key];
    if (v === undefined || v === null) return undefined;
    const id = Array.isArray(v) ? v[0] : v;
    if (typeof id !== 'number' || !Number.isInteger(id)) {
      fail('CORRUPT_FILE', `${this.where}: "${key}" must be a token id, got ${JSON.stringify(v)}`);
    }
    return id;
  }
}
/** dt_rank under `key`: "auto" (ceil(d_model / 16), the default) or a positive integer. */
export function parseDtRank(r: ConfigReader, key: string, dModel: number): number {
  const rank = r.raw[key] ?? 'auto';
  if (rank === 'auto') return Math.ceil(dModel / 16);
  if (typeof rank === 'number' && Number.isInteger(rank) && rank > 0) return rank;
  return fail('CORRUPT_FILE', `${r.where}: "${key}" must be a positive integer or "auto", got ${JSON.stringify(rank)}`);
}
/** A `[min, max]` pair of numbers (infinity arrives through reviveFloats). */
export function limitPair(r: ConfigReader, key: string, dflt: [number, number]): [number, number] {
  const v = r.raw[key] ?? dflt;
  if (
    !Array.isArray(v) ||
    v.length !== 2 ||
    typeof v[0] !== 'number' ||
    typeof v[1] !== 'number' ||
    Number.isNaN(v[0]) ||
    Number.isNaN(v[1])
  ) {
    return fail(
      'CORRUPT_FILE',
      `${r.where}: "${key}" must be [min, max] (two numbers), got ${JSON.stringify(r.raw[key])}`,
    );
  }
  if (!(v[0] <= v[1])) fail('CORRUPT_FILE', `${r.where}: "${key}" must have min <= max, got [${v[0]}, ${v[1]}]`);
  return [v[0], v[1]];
}
