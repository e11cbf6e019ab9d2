import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { benchArgs, REPO_ROOT } from '../src/cli/bench-suites.js';

/**
 * Markdown tables (for docs/webgpu.md) from the JSON files the WebGPU benchmarks write.
 *   node dist/bench/webgpu-report.js [--dir <dir>]   (default: bench/results)
 */
const dir = benchArgs('webgpu-report').dir ?? join(REPO_ROOT, 'bench', 'results');
const load = (name: string): { machine: Record<string, unknown>; results: Record<string, any>[] } | null => {
  const f = join(dir, `${name}.json`);
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : null;
};
const out: string[] = [];
const scan = load('webgpu-scan');
if (scan) {
  // best configuration per shape
  const best = new Map<string, Record<string, any>>();
  for (const r of scan.results) {
    const k = `${r.shape.b},${r.shape.e},${r.shape.l},${r.shape.n}`;
    const t = Math.min(r.gpuMs ?? Infinity, r.wallMs);
    const cur = best.get(k);
    if (!cur || t < Math.min(cur.gpuMs ?? Infinity, cur.wallMs)) best.set(k, r);
  }
  out.push(
    '| selective scan fwd, f32, (b, e, l, n) | WebGPU ms (GPU) | WebGPU ms (wall) | effective GB/s | official CUDA ms | speed-up | chunk, threads/wg |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const [k, r] of best) {
    const t = Math.min(r.gpuMs ?? Infinity, r.wallMs);
    out.push(
      `| (${k}) | ${r.gpuMs?.toFixed(3)} | ${r.wallMs.toFixed(3)} | ${r.gbPerS.toFixed(0)} | ${r.officialMs ?? '-'} | ${r.officialMs ? (r.officialMs / t).toFixed(2) + 'x' : '-'} | ${r.chunk}, ${r.threads}/${r.wg} |`,
    );
  }
  out.push('');
}
const dec = load('webgpu-decode');
if (dec) {
  out.push(
    '| decode, batch 1 | weights | WebGPU tok/s | GPU ms/token | dispatches/token | official (CUDA graphs, f32) |',
    '| --- | --- | --- | --- | --- | --- |',
  );
  for (const r of dec.results)
    out.push(
      `| mamba-${r.model} | ${r.dtype}${r.fuseNorm === false ? ' (norm not fused)' : ''} | ${r.tokensPerSecond.toFixed(0)} | ${r.gpuMsPerToken.toFixed(3)} | ${r.dispatchesPerToken} | ${r.model === '130m' ? 914 : r.model === '1.4b' ? 297 : '-'} |`,
    );
  out.push('');
}
const pre = load('webgpu-prefill');
if (pre) {
  out.push(
    '| prefill, batch 1 | weights | tokens | ms | tok/s | top kernels (share of GPU time) |',
    '| --- | --- | --- | --- | --- | --- |',
  );
  for (const r of pre.results) {
    const top = (r.kernels as { kernel: string; share: number }[])
      .slice(0, 5)
      .map((k) => `${k.kernel} ${(100 * k.share).toFixed(0)}%`)
      .join(', ');
    out.push(
      `| mamba-${r.model} | ${r.dtype} | ${r.tokens} | ${r.ms.toFixed(1)} | ${r.tokensPerSecond.toFixed(0)} | ${top} |`,
    );
  }
  out.push('');
}
const m = (scan ?? dec ?? pre)?.machine as { gpu?: { adapter?: Record<string, string> }; date?: string } | undefined;
if (m) out.push(`Adapter: ${JSON.stringify(m.gpu?.adapter ?? {})}, measured ${m.date}.`);
console.log(out.join('\n'));
