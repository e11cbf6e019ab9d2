import { parseArgs, type ParseArgsConfig } from 'node:util';
import { fail, isMambaError } from '../errors.js';

/**
 * Option parsing for the CLI on top of node's `util.parseArgs` (strict: an unknown option is an
 * error naming it and listing the valid ones), plus typed conversions with messages that name the flag.
 */
export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse(
  cmd: string,
  argv: string[],
  options: Options,
  allowPositionals = false,
): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options, strict: true, allowPositionals });
    return { values: r.values as Record<string, unknown>, positionals: r.positionals };
  } catch (e) {
    if (isMambaError(e)) throw e;
    const err = e as { code?: string; message: string };
    const valid = Object.keys(options)
      .map((k) => `--${k}`)
      .join(', ');
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const m = /'([^']+)'/.exec(err.message);
      fail(
        'UNKNOWN_OPTION',
        `${cmd}: unknown option ${m ? m[1] : ''}; valid options: ${valid} (see mamba-ts ${cmd} --help)`,
      );
    }
    if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL')
      fail('BAD_ARGUMENT', `${cmd}: unexpected argument: ${err.message.replace(/^.*?'/, "'")} (options start with --)`);
    return fail('BAD_ARGUMENT', `${cmd}: ${err.message}`);
  }
}

export function num(
  v: unknown,
  flag: string,
  o: { int?: boolean; min?: number; max?: number; minExclusive?: boolean } = {},
): number | undefined {
  if (v === undefined) return undefined;
  const s = String(v).trim();
  const n = Number(s);
  const want = `${o.int ? 'an integer' : 'a number'}${o.min !== undefined ? (o.minExclusive ? ` > ${o.min}` : ` >= ${o.min}`) : ''}${o.max !== undefined ? ` <= ${o.max}` : ''}`;
  if (s === '' || !Number.isFinite(n) || (o.int && !Number.isInteger(n)))
    fail('BAD_ARGUMENT', `--${flag} must be ${want}, got "${s}"`);
  if (o.min !== undefined && (o.minExclusive ? n <= o.min : n < o.min))
    fail('BAD_ARGUMENT', `--${flag} must be ${want}, got ${n}`);
  if (o.max !== undefined && n > o.max) fail('BAD_ARGUMENT', `--${flag} must be ${want}, got ${n}`);
  return n;
}

/** "1,2, 3" -> [1, 2, 3]; each a non-negative integer. */
export function tokenList(v: string, flag = 'tokens'): number[] {
  const parts = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (parts.length === 0)
    fail('EMPTY_INPUT', `--${flag} is empty: give comma-separated token ids, e.g. --${flag} 1,2,3`);
  return parts.map((p) => {
    if (!/^\d+$/.test(p)) fail('BAD_ARGUMENT', `--${flag}: "${p}" is not a token id (ids are non-negative integers)`);
    return Number(p);
  });
}

export function oneOf<T extends string>(v: unknown, flag: string, allowed: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (!allowed.includes(v as T))
    fail('BAD_ARGUMENT', `--${flag} must be one of ${allowed.join(', ')}, got "${String(v)}"`);
  return v as T;
}
