import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fail } from '../errors.js';
import { helpText, parse, wrap, type CommandSpec } from './args.js';
import { BENCH_SUITES, type BenchSuite } from './bench-suites.js';

/**
 * `mamba-ts bench [suite] [options]`: runs one of the benchmark programs of bench/ (compiled to
 * dist/bench/), which print a table and write JSON with the machine and the command to a new file in
 * bench/results/. The options are checked here first with the suite's table (the program parses
 * the same table), so `--help` and a wrong option answer at once, before anything runs.
 */
const DEFAULT_SUITE: BenchSuite = 'cpu';
const SUITE_NAMES = Object.keys(BENCH_SUITES) as BenchSuite[];

const INDENT = `\n${' '.repeat(18)}`;

export const BENCH_HELP = `mamba-ts bench: measure speed (not a test)

Usage: mamba-ts bench [suite] [options...]
       (default suite: ${DEFAULT_SUITE}; mamba-ts bench <suite> --help for its options)

Suites:
${SUITE_NAMES.map((k) => `  ${k.padEnd(15)} ${wrap(BENCH_SUITES[k].summary, 100).join(INDENT)}`).join('\n')}
`;

export async function benchCommand(argv: string[]): Promise<void> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(BENCH_HELP);
    return;
  }
  const named = first !== undefined && !first.startsWith('-');
  const suite = named ? first : DEFAULT_SUITE;
  const args = named ? rest : argv;
  if (!(suite in BENCH_SUITES))
    fail('BAD_ARGUMENT', `bench: unknown suite "${suite}"; suites: ${SUITE_NAMES.join(', ')}`);
  const spec: CommandSpec = BENCH_SUITES[suite as BenchSuite];
  if (parse(spec, args).help) {
    process.stdout.write(helpText(spec));
    return;
  }
  const script = fileURLToPath(new URL(`../../bench/${suite}.js`, import.meta.url));
  if (!existsSync(script)) fail('FILE_NOT_FOUND', `bench: ${script} is missing; build first (npm run build)`);
  const r = spawnSync(process.execPath, [script, ...args], { stdio: 'inherit' });
  if (r.status !== 0) fail('BAD_ARGUMENT', `bench ${suite} exited with status ${r.status}`);
}
