import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { helpText, numberList, parse, tokenList, type CommandSpec, type OptionSpec } from '../../src/cli/args.js';
import { BENCH_SUITES } from '../../src/cli/bench-suites.js';
import { CHAT } from '../../src/cli/chat.js';
import { SERVE } from '../../src/cli/serve.js';
import { INSPECT } from '../../src/cli/inspect.js';
import { WEB } from '../../src/cli/web.js';
import { GENERATE } from '../../src/cli/generate.js';
import { INFO } from '../../src/cli/info.js';
import { LOGITS } from '../../src/cli/logits.js';
import { TASKS_REPORT, TASKS_RUN } from '../../src/cli/tasks.js';
import { TASKS_LM } from '../../src/cli/tasks-lm.js';
import { TRAIN } from '../../src/cli/train.js';
import { isMambaError } from '../../src/errors.js';

/**
 * The option parser on random argument lists for every command and bench suite: it returns typed
 * values inside each option's range, or throws a MambaError; never another exception.
 */
const SPECS: CommandSpec[] = [
  CHAT,
  SERVE,
  INSPECT,
  WEB,
  GENERATE,
  LOGITS,
  INFO,
  TRAIN,
  TASKS_RUN,
  TASKS_REPORT,
  TASKS_LM,
  ...Object.values(BENCH_SUITES),
];
const RUNS = 400;
const TIME_MS = 3000;

/** Words users (and typos) put on a command line: each command's flags, values, and odd tokens. */
function argWord(spec: CommandSpec): fc.Arbitrary<string> {
  const flags = Object.entries(spec.options).flatMap(([k, o]) => [`--${k}`, ...(o.short ? [`-${o.short}`] : [])]);
  const values = [
    '-1',
    '-0',
    '0',
    '1',
    '1e9',
    '1e400',
    '-Infinity',
    'NaN',
    '0x10',
    '',
    ' ',
    '3.5',
    '9007199254740993',
    'cpu',
    'json',
    'text',
    'f32',
    '1,2,3',
    '--',
    '-',
    '-x',
    '=',
    '--=',
    '--help',
    '-h',
    'mamba',
    'mqar',
    '2^3..2^5',
  ];
  return fc.oneof(
    fc.constantFrom(...flags),
    fc.constantFrom(...values),
    fc.tuple(fc.constantFrom(...flags), fc.constantFrom(...values)).map(([f, v]) => `${f}=${v}`),
    fc.string({ maxLength: 8 }),
    fc.string({ maxLength: 4 }).map((s) => `--${s}`),
    fc.integer().map(String),
    fc.double().map(String),
  );
}

function checkValue(k: string, o: OptionSpec, v: unknown): void {
  const one = (x: unknown): void => {
    if (o.type === 'int' || o.type === 'number') {
      assert.equal(typeof x, 'number', k);
      assert.ok(Number.isFinite(x as number), k);
      if (o.type === 'int') assert.ok(Number.isSafeInteger(x), `${k} ${String(x)}`);
      if (o.min !== undefined)
        assert.ok(o.minExclusive ? (x as number) > o.min : (x as number) >= o.min, `${k} ${String(x)}`);
      if (o.max !== undefined) assert.ok((x as number) <= o.max, `${k} ${String(x)}`);
    } else if (o.type === 'enum') assert.ok(o.values!.includes(x as string), `${k} ${String(x)}`);
    else if (o.type === 'boolean') assert.equal(typeof x, 'boolean');
    else {
      assert.equal(typeof x, 'string', k);
      if (o.nonEmpty) assert.notEqual(x, '', k);
    }
  };
  if (o.multiple) (v as unknown[]).forEach(one);
  else if (v !== undefined || o.type === 'boolean') one(v);
}

for (const spec of SPECS) {
  test(`fuzz: ${spec.name} argument lists parse to in-range values or a MambaError`, () => {
    assert.ok(helpText(spec).includes(`mamba-ts ${spec.name}`));
    fc.assert(
      fc.property(fc.array(argWord(spec), { maxLength: 8 }), (argv) => {
        let r;
        try {
          r = parse(spec, argv);
        } catch (e) {
          assert.ok(isMambaError(e), `${JSON.stringify(argv)}: ${String((e as Error)?.stack ?? e)}`);
          assert.match((e as Error).message, /\S/);
          return;
        }
        if (r.help) return;
        for (const [k, o] of Object.entries(spec.options)) checkValue(k, o, (r.values as Record<string, unknown>)[k]);
      }),
      { numRuns: RUNS, interruptAfterTimeLimit: TIME_MS, seed: 42 },
    );
  });
}

test('fuzz: --flag -N and --flag=-N reach the range check for every numeric option', () => {
  for (const spec of SPECS) {
    for (const [k, o] of Object.entries(spec.options)) {
      if (o.type !== 'int' && o.type !== 'number') continue;
      for (const argv of [[`--${k}`, '-5'], [`--${k}=-5`]]) {
        if (o.min === undefined || o.min <= -5) continue;
        assert.throws(
          () => parse(spec, argv),
          (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && new RegExp(`--${k} must be`).test((e as Error).message),
          `${spec.name} ${argv.join(' ')}`,
        );
      }
    }
  }
});

test('fuzz: token and number lists', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 30 }), (s) => {
      for (const f of [(): unknown => tokenList(s), (): unknown => numberList(s, 'x', { int: true, min: 0 })]) {
        try {
          const r = f() as number[];
          assert.ok(r.every((n) => Number.isSafeInteger(n) && n >= 0));
        } catch (e) {
          assert.ok(isMambaError(e), String(e));
        }
      }
    }),
    { numRuns: 1000, interruptAfterTimeLimit: TIME_MS, seed: 7 },
  );
});
