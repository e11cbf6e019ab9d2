import { parseArgs, type ParseArgsConfig } from 'node:util';
import { fail, isMambaError } from '../errors.js';

/**
 * The CLI's one option parser. Each command (and bench suite) declares a table of its options, with
 * type, default, range and description; both the parsing and the `--help` text come from that table,
 * so a default is written once. Parsing is strict (node's `util.parseArgs`): an unknown option is an
 * error naming it and listing the valid ones; numbers are range-checked with messages that name the
 * flag; `--flag -1` reads a negative number as the flag's value (node would call it ambiguous).
 */
export interface OptionSpec {
  readonly type: 'string' | 'boolean' | 'int' | 'number' | 'enum';
  readonly short?: string;
  /** Repeatable: the value is a list (empty when not given). */
  readonly multiple?: boolean;
  readonly default?: string | number;
  /** The default in words, when the code computes it elsewhere (e.g. "all cores, at most 8"). */
  readonly defaultText?: string;
  readonly min?: number;
  readonly minExclusive?: boolean;
  readonly max?: number;
  /** The allowed values of an enum. */
  readonly values?: readonly string[];
  /** Reject the empty string. */
  readonly nonEmpty?: boolean;
  /** The value's placeholder in the help, e.g. `<dir>` (default `<n>` / `<x>` / `<a|b>` / `<text>`). */
  readonly arg?: string;
  readonly help: string;
  /** Not shown in the help (internal protocol options of the bench programs). */
  readonly hidden?: boolean;
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;

export interface CommandSpec {
  /** e.g. `generate`, `train`, `bench cpu`: names the command in messages. */
  readonly name: string;
  /** The first line of the help. */
  readonly summary: string;
  /** Usage lines (without the leading `Usage: `). */
  readonly usage: readonly string[];
  readonly options: OptionTable;
  /** Positional arguments allowed (e.g. `tasks run <task>`). */
  readonly positionals?: boolean;
  /** Text printed after the options. */
  readonly footer?: string;
  /** Text printed between the usage and the options. */
  readonly header?: string;
}

/** `--help, -h`, which every command has. */
export const HELP_OPTION: OptionTable = { help: { type: 'boolean', short: 'h', help: 'this help' } };

type ValueOf<O extends OptionSpec> = O['type'] extends 'boolean'
  ? boolean
  : O['type'] extends 'int' | 'number'
    ? number
    : string;
type HasDefault<O extends OptionSpec> = O extends { default: string | number } ? true : false;

/** The parsed values of a table: lists for repeatable options, booleans always, undefined when absent. */
export type Values<T extends OptionTable> = {
  -readonly [K in keyof T]: T[K] extends { multiple: true }
    ? ValueOf<T[K]>[]
    : T[K]['type'] extends 'boolean'
      ? boolean
      : HasDefault<T[K]> extends true
        ? ValueOf<T[K]>
        : ValueOf<T[K]> | undefined;
};

export interface Parsed<T extends OptionTable> {
  /** `--help` was given: print `helpText(spec)` and do nothing else. */
  help: boolean;
  values: Values<T>;
  positionals: string[];
  /** Options given on the command line (not defaulted). */
  given: Set<string>;
}

const numeric = (o: OptionSpec): boolean => o.type === 'int' || o.type === 'number';
const NEGATIVE = /^-(\d|\.\d|Infinity)/;

/** `--n -1` and `-n -1` -> `--n=-1` for numeric options: node's parseArgs would reject them as ambiguous. */
function joinNegatives(argv: readonly string[], options: OptionTable): string[] {
  const out: string[] = [];
  const byShort = new Map(
    Object.entries(options)
      .filter(([, o]) => o.short)
      .map(([k, o]) => [o.short!, k]),
  );
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const name = a.startsWith('--') ? a.slice(2) : /^-[^-]$/.test(a) ? byShort.get(a[1]) : undefined;
    const next = argv[i + 1];
    const o = name !== undefined && !name.includes('=') ? options[name] : undefined;
    if (o && numeric(o) && next !== undefined && NEGATIVE.test(next)) {
      out.push(`--${name}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

function validList(options: OptionTable): string {
  return Object.entries(options)
    .filter(([, o]) => !o.hidden)
    .map(([k]) => `--${k}`)
    .join(', ');
}

/** Parses argv against a command's table: typed values with defaults, or a MambaError naming the flag. */
export function parse<T extends OptionTable>(spec: CommandSpec & { options: T }, argv: readonly string[]): Parsed<T> {
  const cmd = spec.name;
  const options = spec.options;
  const config: NonNullable<ParseArgsConfig['options']> = {};
  for (const [k, o] of Object.entries(options)) {
    config[k] = {
      type: o.type === 'boolean' ? 'boolean' : 'string',
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
    };
  }
  const wantsHelp = argv.some((a) => a === '--help' || a === '-h') && 'help' in options;
  let raw: { values: Record<string, unknown>; positionals: string[] };
  try {
    const r = parseArgs({
      args: joinNegatives(argv, options),
      options: config,
      strict: true,
      allowPositionals: spec.positionals === true,
    });
    raw = { values: r.values as Record<string, unknown>, positionals: r.positionals };
  } catch (e) {
    if (wantsHelp) return { help: true, values: {} as Values<T>, positionals: [], given: new Set() };
    if (isMambaError(e)) throw e;
    const err = e as { code?: string; message?: string };
    const message = String(err.message ?? e);
    const valid = validList(options);
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const m = /'([^']+)'/.exec(message);
      fail(
        'UNKNOWN_OPTION',
        `${cmd}: unknown option ${m ? m[1] : ''}; valid options: ${valid} (see mamba-ts ${cmd} --help)`,
      );
    }
    if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      const arg = message.replace(/^.*?'/, "'").replace(/'\..*$/s, "'");
      fail('BAD_ARGUMENT', `${cmd}: unexpected argument ${arg} (options start with --; valid options: ${valid})`);
    }
    return fail('BAD_ARGUMENT', `${cmd}: ${message}`);
  }
  if (wantsHelp || raw.values['help'] === true)
    return { help: true, values: {} as Values<T>, positionals: raw.positionals, given: new Set() };
  const values: Record<string, unknown> = {};
  const given = new Set<string>();
  for (const [k, o] of Object.entries(options)) {
    const v = raw.values[k];
    if (v !== undefined) given.add(k);
    if (o.type === 'boolean') {
      values[k] = v === true;
      continue;
    }
    if (o.multiple) {
      values[k] = ((v as string[] | undefined) ?? []).map((x) => convert(x, k, o));
      continue;
    }
    values[k] = v === undefined ? o.default : convert(v as string, k, o);
  }
  return { help: false, values: values as Values<T>, positionals: raw.positionals, given };
}

function convert(s: string, flag: string, o: OptionSpec): string | number {
  if (o.nonEmpty && s === '') fail('BAD_ARGUMENT', `--${flag} must not be empty (${o.help})`);
  if (numeric(o)) return num(s, flag, { int: o.type === 'int', ...range(o) })!;
  if (o.type === 'enum') return oneOf(s, flag, o.values ?? [], s);
  return s;
}

const range = (o: OptionSpec): { min?: number; max?: number; minExclusive?: boolean } => ({
  ...(o.min !== undefined ? { min: o.min } : {}),
  ...(o.max !== undefined ? { max: o.max } : {}),
  ...(o.minExclusive ? { minExclusive: true } : {}),
});

function rangeText(o: OptionSpec): string {
  const lo = o.min === undefined ? '' : o.minExclusive ? `> ${o.min}` : `>= ${o.min}`;
  const hi = o.max === undefined ? '' : `<= ${o.max}`;
  return [lo, hi].filter(Boolean).join(', ');
}

function placeholder(o: OptionSpec): string {
  if (o.type === 'boolean') return '';
  if (o.arg) return ` ${o.arg}`;
  if (o.type === 'enum') return ` <${(o.values ?? []).join('|')}>`;
  return o.type === 'int' ? ' <n>' : o.type === 'number' ? ' <x>' : ' <text>';
}

/** One option's help line(s): `--name, -s <arg>  description (default d; range)`. */
function optionLines(name: string, o: OptionSpec, width: number): string[] {
  const left = `  --${name}${o.short ? `, -${o.short}` : ''}${placeholder(o)}`;
  const kind = o.type === 'int' ? 'an integer' : o.type === 'number' ? 'a number' : '';
  const facts = [
    o.default !== undefined ? `default ${o.default}` : o.defaultText ? `default: ${o.defaultText}` : '',
    numeric(o) && rangeText(o) ? `${kind} ${rangeText(o)}` : '',
    o.multiple ? 'repeatable' : '',
  ].filter(Boolean);
  const text = `${o.help}${facts.length ? ` (${facts.join('; ')})` : ''}`;
  const wrapped = wrap(text, 118 - width);
  const first = left.length < width ? left.padEnd(width) + wrapped[0] : `${left}\n${' '.repeat(width)}${wrapped[0]}`;
  return [first, ...wrapped.slice(1).map((l) => ' '.repeat(width) + l)];
}

export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    for (const word of para.split(' ')) {
      if (line && line.length + 1 + word.length > width) {
        lines.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    lines.push(line);
  }
  return lines;
}

/** The `--help` text of a command, from its table. */
export function helpText(spec: CommandSpec): string {
  const width = 36;
  const opts = Object.entries(spec.options)
    .filter(([, o]) => !o.hidden)
    .flatMap(([k, o]) => optionLines(k, o, width));
  return [
    ...wrap(`mamba-ts ${spec.name}: ${spec.summary}`, 118),
    '',
    ...spec.usage.map((u, i) => `${i === 0 ? 'Usage: ' : '       '}${u}`),
    '',
    ...(spec.header ? [spec.header, ''] : []),
    'Options:',
    ...opts,
    ...(spec.footer ? ['', spec.footer] : []),
    '',
  ].join('\n');
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
  if (o.int && !Number.isSafeInteger(n)) fail('BAD_ARGUMENT', `--${flag} must be ${want}, got ${s} (too large)`);
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
    const n = Number(p);
    if (!Number.isSafeInteger(n)) fail('TOKEN_OUT_OF_RANGE', `--${flag}: ${p} is too large to be a token id`);
    return n;
  });
}

/** "1,2,4" -> numbers, each checked like `num`. */
export function numberList(v: string, flag: string, o: { int?: boolean; min?: number; max?: number } = {}): number[] {
  const parts = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (parts.length === 0) fail('EMPTY_INPUT', `--${flag} is empty: give comma-separated numbers, e.g. --${flag} 1,2`);
  return parts.map((p) => num(p, flag, o)!);
}

/** "a,b" -> each one of `allowed`. */
export function choiceList<T extends string>(v: string, flag: string, allowed: readonly T[]): T[] {
  const parts = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (parts.length === 0) fail('EMPTY_INPUT', `--${flag} is empty: give one or more of ${allowed.join(', ')}`);
  return parts.map((p) => oneOf(p, flag, allowed, p as T));
}

export function oneOf<T extends string>(v: unknown, flag: string, allowed: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (!allowed.includes(v as T))
    fail('BAD_ARGUMENT', `--${flag} must be one of ${allowed.join(', ')}, got "${String(v)}"`);
  return v as T;
}
