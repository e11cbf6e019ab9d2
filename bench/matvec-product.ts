/**
 * The decode product alone (CpuBackend.matmul with one row of x: the matvec kernels) of two builds,
 * alternating (A B A B ...) so that the machine's drift falls on both alike. Each child process
 * imports the backend of one checkout, times every shape and hashes the outputs: equal hashes mean
 * the two builds give the same bits on these inputs. The time of a product is the best batch's: CPU
 * time on one thread (the process's own, so other load on the machine counts less), wall time on more.
 *
 *   npm run build && node dist/bench/matvec-product.js --base <checkout with a built dist/> [options]
 *     --dtype f16   --shapes 6448x1536,1536x3072   (rows p x columns q of W)   --m 1
 *     --threads 1,2   --rounds 5   --ms 400 (time per shape and run)   --out <file>
 *     --copies 12 (copies of W used in turn: W comes from memory, not the caches, as in decode)
 * Default shapes: Granite 4.0-H 1B's decode products (in_proj 6448 x 1536, out_proj 1536 x 3072, the
 * shared MLP's 8192 x 1536 and 1536 x 4096).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface ShapeResult {
  shape: string;
  usPerProduct: number;
  hash: string;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Deterministic values in [-1, 1) (xorshift). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

function fnv(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

async function child(
  checkout: string,
  dtype: string,
  shapes: string[],
  m: number,
  threads: number,
  ms: number,
  copies: number,
) {
  const { CpuBackend } = await import(pathToFileURL(join(checkout, 'dist/src/backend/cpu/cpu-backend.js')).href);
  const { f32ToF16Bits, f32ToBf16Bits } = await import(pathToFileURL(join(checkout, 'dist/src/tensor/dtype.js')).href);
  const be = new CpuBackend({ kernels: 'wasm' });
  await be.useThreads(threads);
  const results: ShapeResult[] = [];
  for (const shape of shapes) {
    const [p, q] = shape.split('x').map(Number);
    const wv = values(p * q, 7 + p);
    // a few exact zeros, negative zeros and subnormal halves among the weights
    for (let i = 0; i < wv.length; i += 97) wv[i] = i % 3 === 0 ? 0 : i % 3 === 1 ? -0 : (i % 5) * 2 ** -20;
    const bits =
      dtype === 'f16'
        ? Uint16Array.from(wv, f32ToF16Bits)
        : dtype === 'bf16'
          ? Uint16Array.from(wv, f32ToBf16Bits)
          : null;
    const upload = () => (bits ? be.upload(bits, [p, q], dtype) : be.upload(wv, [p, q], dtype));
    // copies of W used in turn, so that each product reads W from memory as decode does (a model's
    // weights do not fit in the caches), unless copies = 1
    const ws = Array.from({ length: copies }, upload);
    const w = ws[0];
    const x = be.upload(values(m * q, 3 + q), [m, q]);
    const out = be.upload(new Float32Array(m * p), [m, p]);
    be.matmul(out, x, w, { transB: true });
    const got = be.readSync(out) as Float32Array;
    const hash = fnv(new Uint8Array(got.buffer, got.byteOffset, got.byteLength));
    // batches of ~20 ms, the median batch
    let n = 1;
    for (;;) {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) be.matmul(out, x, ws[i % copies], { transB: true });
      if (performance.now() - t0 > 20) break;
      n *= 2;
    }
    // one thread: the process's CPU time (what the machine's other load takes is not counted);
    // several: wall time (the workers spin between commands, so CPU time says nothing)
    const per: number[] = [];
    const end = performance.now() + ms;
    while (performance.now() < end) {
      const t0 = performance.now(),
        c0 = process.cpuUsage();
      for (let i = 0; i < n; i++) be.matmul(out, x, ws[i % copies], { transB: true });
      const c = process.cpuUsage(c0);
      per.push(threads === 1 ? (c.user + c.system) / n : ((performance.now() - t0) * 1000) / n);
    }
    results.push({ shape, usPerProduct: Math.min(...per), hash });
    for (const t of [...ws, x, out]) t.dispose();
  }
  await be.useThreads(1);
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      child: { type: 'string' },
      base: { type: 'string' },
      dtype: { type: 'string', default: 'f16' },
      shapes: { type: 'string', default: '6448x1536,1536x3072,8192x1536,1536x4096' },
      m: { type: 'string', default: '1' },
      threads: { type: 'string', default: '1,2' },
      rounds: { type: 'string', default: '5' },
      ms: { type: 'string', default: '400' },
      copies: { type: 'string', default: '12' },
      out: { type: 'string' },
    },
  });
  const shapes = v.shapes.split(',');
  const m = Number(v.m);
  if (v.child !== undefined) {
    await child(v.child, v.dtype, shapes, m, Number(v.threads), Number(v.ms), Number(v.copies));
    return;
  }
  if (v.base === undefined || !existsSync(join(resolve(v.base), 'dist/src/backend/cpu/cpu-backend.js'))) {
    process.stderr.write('usage: node dist/bench/matvec-product.js --base <checkout with a built dist/> [options]\n');
    process.exit(2);
  }
  const sides = [
    ['base', resolve(v.base)],
    ['head', ROOT],
  ] as const;
  const load0 = loadavg();
  const runs = new Map<string, { base: number[]; head: number[]; hash: { base: string; head: string } }>();
  for (let round = 0; round < Number(v.rounds); round++) {
    for (const t of v.threads.split(',')) {
      for (const [side, dir] of round % 2 ? [...sides].reverse() : sides) {
        const args = [fileURLToPath(import.meta.url), '--child', dir, '--dtype', v.dtype, '--shapes', v.shapes];
        args.push('--m', v.m, '--threads', t, '--ms', v.ms, '--copies', v.copies);
        const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
        if (r.status !== 0) throw new Error(`child ${side} failed with status ${r.status}`);
        for (const s of JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ShapeResult[]) {
          const key = `${s.shape}/${t}`;
          const e = runs.get(key) ?? { base: [], head: [], hash: { base: '', head: '' } };
          e[side].push(s.usPerProduct);
          e.hash[side] = s.hash;
          runs.set(key, e);
        }
      }
    }
  }
  const rows = [...runs].map(([key, e]) => {
    const b = median(e.base),
      h = median(e.head);
    return {
      key,
      baseUs: b,
      headUs: h,
      speedup: b / h,
      sameBits: e.hash.base === e.hash.head,
      base: e.base,
      head: e.head,
    };
  });
  process.stdout.write(
    `| W (p x q) / threads | base us | head us | base / head | same bits |\n| --- | --- | --- | --- | --- |\n`,
  );
  for (const r of rows)
    process.stdout.write(
      `| ${r.key} | ${r.baseUs.toFixed(1)} | ${r.headUs.toFixed(1)} | ${r.speedup.toFixed(2)} | ${r.sameBits} |\n`,
    );
  const load1 = loadavg();
  process.stdout.write(
    `load average before ${load0.map((x) => x.toFixed(2)).join(' ')}, after ${load1.map((x) => x.toFixed(2)).join(' ')}\n`,
  );
  const out =
    v.out ?? join(ROOT, 'bench', 'results', `matvec-product-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify({ command: process.argv.slice(1).join(' '), cpu: cpus()[0]?.model, cores: cpus().length, loadBefore: load0, loadAfter: load1, dtype: v.dtype, m, rows }, null, 2)}\n`,
  );
  process.stdout.write(`wrote ${out}\n`);
}

await main();
