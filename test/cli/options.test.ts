import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { helpText, parse } from '../../src/cli/args.js';
import { BENCH_SUITES, resultFile } from '../../src/cli/bench-suites.js';
import { GENERATE } from '../../src/cli/generate.js';
import { TASKS_RUN } from '../../src/cli/tasks.js';
import { TRAIN } from '../../src/cli/train.js';
import { isMambaError } from '../../src/errors.js';
import { DEFAULT_SAMPLING } from '../../src/generate/generate.js';
import { DEFAULT_TASK_MODEL } from '../../src/tasks/models.js';
import { PARITY, ROOT } from '../helpers/fixtures.js';
import { makeTinyModel } from '../helpers/tiny-model.js';

/** The option tables: help and parsing from one source; strict, negative numbers, empty values; bench suites. */
const BIN = join(ROOT, 'bin', 'mamba-ts.js');

function cli(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, HF_HUB_OFFLINE: '1' },
    timeout: 60_000,
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const noStack = (s: string, what: string): void =>
  assert.doesNotMatch(s, /\n\s+at |internal error/, `stack trace for ${what}`);

test('the help shows the defaults the parser uses (one table)', () => {
  const help = helpText(GENERATE);
  assert.match(help, new RegExp(`--temperature <x> .*\\(default ${DEFAULT_SAMPLING.temperature}; a number >= 0\\)`));
  assert.match(help, new RegExp(`--top-k <n> .*\\(default ${DEFAULT_SAMPLING.topK}; an integer >= 0\\)`));
  const v = parse(GENERATE, []).values;
  assert.equal(v.temperature, DEFAULT_SAMPLING.temperature);
  assert.equal(v['top-p'], DEFAULT_SAMPLING.topP);
  assert.equal(v.format, 'text');
  assert.match(helpText(TASKS_RUN), new RegExp(`--d-model <n> .*\\(default ${DEFAULT_TASK_MODEL.dModel};`));
  assert.equal(parse(TASKS_RUN, ['mqar']).values['d-model'], DEFAULT_TASK_MODEL.dModel);
  for (const spec of [GENERATE, TRAIN, TASKS_RUN, ...Object.values(BENCH_SUITES)]) {
    const text = helpText(spec);
    for (const [k, o] of Object.entries(spec.options))
      if (!o.hidden) assert.ok(text.includes(`--${k}`), `${spec.name} --${k}`);
    for (const line of text.split('\n')) assert.ok(line.length <= 120, `${spec.name}: ${line}`);
  }
});

test('negative numbers reach the range check; --flag=-1 too; empty --stop is refused', () => {
  const bad = (argv: string[], re: RegExp): void =>
    assert.throws(
      () => parse(GENERATE, argv),
      (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && re.test((e as Error).message),
      argv.join(' '),
    );
  bad(['--max-new-tokens', '-1'], /^--max-new-tokens must be an integer >= 0, got -1$/);
  bad(['--max-new-tokens=-1'], /^--max-new-tokens must be an integer >= 0, got -1$/);
  bad(['-n', '-1'], /^--max-new-tokens must be an integer >= 0, got -1$/);
  bad(['--temperature', '-0.5'], /--temperature must be a number >= 0, got -0.5/);
  bad(['--top-p', '-.5'], /--top-p must be a number > 0 <= 1/);
  bad(['--seed', '-Infinity'], /--seed must be an integer/);
  bad(['--stop', ''], /--stop must not be empty/);
  bad(['--stop', 'ok', '--stop='], /--stop must not be empty/);
  // A string option still takes a dash-led value only as --flag=value (node's rule), with a clear message.
  assert.deepEqual(parse(GENERATE, ['--prompt=-1', '--stop=-']).values.prompt, ['-1']);
});

test('CLI: negative numbers and empty stop strings are clear errors, exit 2, no stack trace', () => {
  const fx = join(PARITY, 'mamba1-tied');
  const cases: [string[], RegExp][] = [
    [
      ['generate', '--model', fx, '--tokens', '1', '--max-new-tokens', '-1'],
      /error\[BAD_ARGUMENT\]: --max-new-tokens must be an integer >= 0, got -1/,
    ],
    [
      ['generate', '--model', fx, '--tokens', '1', '--max-new-tokens=-1'],
      /error\[BAD_ARGUMENT\]: --max-new-tokens must be an integer >= 0, got -1/,
    ],
    [['generate', '--model', fx, '--tokens', '1', '--stop', ''], /error\[BAD_ARGUMENT\]: --stop must not be empty/],
    [['generate', '--model', fx, '--tokens', '1', '--threads', '0'], /--threads must be an integer >= 1 <= 256, got 0/],
    [['train', '--data', 'x', '--steps', '-3', '--out', 'y'], /--steps must be an integer >= 1, got -3/],
    [['tasks', 'run', 'mqar', '--mixer', 'mamba', '--lr', '-1'], /--lr must be a number > 0, got -1/],
  ];
  for (const [args, re] of cases) {
    const r = cli(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re, args.join(' '));
    noStack(r.err, args.join(' '));
  }
});

test('every command and bench suite has --help (nothing runs), and names unknown options with the valid ones', () => {
  for (const c of [
    ['generate'],
    ['logits'],
    ['info'],
    ['train'],
    ['tasks'],
    ['tasks', 'run'],
    ['tasks', 'report'],
    ['bench'],
  ]) {
    const r = cli(...c, '--help');
    assert.equal(r.code, 0, `${c.join(' ')}: ${r.err}`);
    assert.match(r.out, new RegExp(`mamba-ts ${c[0]}`));
  }
  for (const suite of Object.keys(BENCH_SUITES)) {
    const t0 = Date.now();
    const h = cli('bench', suite, '--help');
    assert.equal(h.code, 0, `${suite}: ${h.err}`);
    assert.match(h.out, new RegExp(`^mamba-ts bench ${suite}: `));
    assert.ok(Date.now() - t0 < 20_000, `bench ${suite} --help ran the benchmark?`);
    const u = cli('bench', suite, '--bogus', '1');
    assert.equal(u.code, 2);
    assert.match(
      u.err,
      new RegExp(`error\\[UNKNOWN_OPTION\\]: bench ${suite}: unknown option --bogus; valid options: --`),
    );
    noStack(u.err, `bench ${suite} --bogus`);
    // The compiled program parses with the same table when run directly.
    const script = join(ROOT, 'dist', 'bench', `${suite}.js`);
    if (!existsSync(script)) continue;
    const d = spawnSync(process.execPath, [script, '--bogus'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(d.status, 2, `${suite}: ${d.stderr}`);
    assert.match(d.stderr, /error\[UNKNOWN_OPTION\]: .*--bogus/);
    noStack(d.stderr, `${suite}.js --bogus`);
  }
  const neg = cli('bench', 'scan-memory', '--batch', '-2');
  assert.equal(neg.code, 2);
  assert.match(neg.err, /--batch must be an integer >= 1, got -2/);
  assert.match(cli('bench', 'nope').err, /unknown suite "nope"; suites: cpu, /);
});

test('bench results go to a new timestamped file (or --out), never a committed one', () => {
  const a = resultFile('scan-memory');
  assert.match(a, /bench[\\/]results[\\/]scan-memory-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z\.json$/);
  assert.ok(!existsSync(a));
  assert.notEqual(a, join(ROOT, 'bench', 'results', 'scan-memory.json'));
  assert.equal(resultFile('x', '/tmp/mamba-ts-out/r.json'), '/tmp/mamba-ts-out/r.json');
});

test('generate with a hostile tokenizer.json: a 41-character prompt does not hang; lookaround and huge tokens are clear errors', async () => {
  const dir = await makeTinyModel();
  const tokPath = join(dir, 'tokenizer.json');
  const json = JSON.parse(readFileSync(tokPath, 'utf8')) as Record<string, unknown>;
  const prompt = `${'a'.repeat(40)}!`;
  const split = (regex: string): unknown => ({
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
      json['pre_tokenizer'],
    ],
  });
  // Exponential for a backtracking engine; linear in RE2.
  writeFileSync(tokPath, JSON.stringify({ ...json, pre_tokenizer: split('(a+)+$') }));
  const t0 = Date.now();
  const ok = cli('generate', '--model', dir, '--prompt', prompt, '-n', '2', '--seed', '1');
  assert.equal(ok.code, 0, ok.err);
  assert.ok(ok.out.startsWith(prompt));
  assert.ok(Date.now() - t0 < 30_000);
  writeFileSync(tokPath, JSON.stringify({ ...json, pre_tokenizer: split('(a+)+(?=!)') }));
  const look = cli('generate', '--model', dir, '--prompt', prompt, '-n', '2');
  assert.equal(look.code, 1);
  assert.match(
    look.err,
    /error\[UNSUPPORTED\]: .*tokenizer\.json: the pre_tokenizer\.pretokenizers\[0\] pattern .* uses lookaround/,
  );
  noStack(look.err, 'lookaround');
  const added = json['added_tokens'] as unknown[];
  writeFileSync(
    tokPath,
    JSON.stringify({ ...json, added_tokens: [...added, { id: 5, content: 'x'.repeat(50 * 2 ** 20), special: true }] }),
  );
  const big = cli('generate', '--model', dir, '--prompt', prompt, '-n', '2');
  assert.equal(big.code, 1);
  assert.match(
    big.err,
    /error\[CORRUPT_FILE\]: .*tokenizer\.json: added token "x{20}"\.\.\. is 52,428,800 characters long/,
  );
  noStack(big.err, 'big token');
});
