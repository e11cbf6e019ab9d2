import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fail } from '../errors.js';

/**
 * `mamba-ts bench [suite] [options]`: runs one of the benchmark programs of bench/ (compiled to
 * dist/bench/), which print a table and write JSON with the machine and the command to
 * bench/results/. Options after the suite name go to the program (each has its own --help).
 */
const SUITES: Record<string, string> = {
  cpu:
    'decode and prefill tokens/s on the CPU: mamba-130m / 1.4b shapes, f32/f16/bf16/q8/q4, ' +
    'WebAssembly vs TypeScript kernels, 1 and 2 threads, next to llama.cpp',
  'webgpu-decode': 'batch-1 decode tokens/s through WebGPU (mamba-130m / 1.4b shapes, f32 and 16-bit weights)',
  'webgpu-prefill': 'prefill tokens/s through WebGPU at 2048 tokens, with the share of time in each kernel',
  'webgpu-scan': 'the fused selective scan through WebGPU on the three standard shapes (ms, GB/s)',
  ssd: 'Mamba-2 SSD chunked scan vs the Mamba-1 selective scan on the CPU',
  train: 'training tokens/s, peak memory and seconds per kernel of full training steps (forward, backward, AdamW)',
  'scan-memory': 'peak memory of the selective scan backward: chunked recomputation vs storing every state',
};

export const BENCH_HELP = `mamba-ts bench: measure speed (not a test)

Usage: mamba-ts bench [suite] [options...]     (default suite: cpu; options go to the suite: --help)

Suites:
${Object.entries(SUITES)
  .map(([k, v]) => `  ${k.padEnd(15)} ${v}`)
  .join('\n')}
`;

export async function benchCommand(argv: string[]): Promise<void> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h') {
    process.stdout.write(BENCH_HELP);
    return;
  }
  const suite = first && !first.startsWith('-') ? first : 'cpu';
  const args = first && !first.startsWith('-') ? rest : argv;
  if (!SUITES[suite])
    fail('BAD_ARGUMENT', `bench: unknown suite "${suite}"; suites: ${Object.keys(SUITES).join(', ')}`);
  const script = fileURLToPath(new URL(`../../bench/${suite}.js`, import.meta.url));
  if (!existsSync(script)) fail('FILE_NOT_FOUND', `bench: ${script} is missing; build first (npm run build)`);
  const r = spawnSync(process.execPath, [script, ...args], { stdio: 'inherit' });
  if (r.status !== 0) fail('BAD_ARGUMENT', `bench ${suite} exited with status ${r.status}`);
}
