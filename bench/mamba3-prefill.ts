import { parseArgs } from 'node:util';
import { mamba3ProjWidth, type Mamba3Dims, type Mamba3ScanArgs } from '../src/backend/contract/mamba3.js';
import { cpu } from '../src/backend/cpu/cpu-backend.js';
import { isMambaError } from '../src/errors.js';
import type { SsdPath } from '../src/backend/webgpu/kernel-host.js';
import type { WebGpuBackend } from '../src/backend/webgpu/webgpu-backend.js';
import { filled, Rng } from '../src/mixers/init.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { parseVariant, variantModel } from './mamba3-variants.js';
import { backend, byKernel, machine, random, table, timeCalls, warmUp, writeResult } from './webgpu-common.js';

/**
 * Mamba-3's prefill on WebGPU: the token scan (mamba3-scan.wgsl, one workgroup per (sequence, head)
 * walking the tokens) against the chunked form (mamba3-chunked.wgsl around Mamba-2's chunked SSD kernels),
 * SISO and MIMO. The path is `ssdPath` ('sequential': the token scan; 'chunked') with chunk `ssdChunk`.
 *   npx tsc -p . && node dist/bench/mamba3-prefill.js [--shapes 1x2048x24x64x64,...] [--chunks 256,128,64]
 *     [--reps 10] [--model true] [--lengths 512,2048,8192] [--layers 24] [--d-model 768] [--out DIR]
 * Shapes are b x l x heads x head_dim x d_state [x MIMO rank] (rope_fraction 0.5: S = d_state / 4), the scan with a
 * decode state (as a prompt before generation). Time: GPU time from timestamp queries (every dispatch of
 * one call, the parameter packing included; median over reps) and wall clock per call with calls queued
 * back to back. With --model, language models of `--layers` Mamba-3 layers, SISO and MIMO rank 4 at d_state
 * 64 (mamba2-130m's width by default; bench/mamba3-variants.ts) time forward(ids, lastOnly) per path, and Mamba-2 (d_state 128) at
 * the same width for scale. First checks both paths against the CPU reference on a small scan.
 */
const { values: o } = parseArgs({
  options: {
    shapes: {
      type: 'string',
      default: '1x512x24x64x64,1x2048x24x64x64,4x2048x24x64x64,1x8192x24x64x128,1x2048x24x64x64x4',
    },
    chunks: { type: 'string', default: '256,128,64' },
    reps: { type: 'string', default: '10' },
    model: { type: 'string', default: 'true' },
    lengths: { type: 'string', default: '512,2048,8192' },
    layers: { type: 'string', default: '24' },
    'd-model': { type: 'string', default: '768' },
    vocab: { type: 'string', default: '50280' },
    out: { type: 'string' },
  },
});
const reps = Number(o.reps);
const chunks = o.chunks.split(',').map(Number);
const configs: [SsdPath, number][] = [['sequential', 0], ...chunks.map((q) => ['chunked', q] as [SsdPath, number])];

function dimsOf(h: number, p: number, n: number, R = 1): Mamba3Dims {
  return { h, p, n, g: 1, R, S: n / 4, aFloor: 1e-4, rotateHalves: R > 1, eps: 1e-5 };
}

/** The scan's arguments with a decode state: proj of (b, l) tokens and random parameters. */
function inputs(bk: WebGpuBackend, b: number, l: number, d: Mamba3Dims): Mamba3ScanArgs {
  const { h, p, n, R, S } = d;
  const mimo = (seed: number): Tensor | null => (R > 1 ? random(bk, [h, R, p], 0.5, 1.5, seed) : null);
  return {
    y: bk.alloc([b, l, h * p]),
    proj: random(bk, [b, l, mamba3ProjWidth(d)], -1, 1, 1),
    dtBias: random(bk, [h], -3, -1, 2),
    BNorm: random(bk, [n], 0.8, 1.2, 3),
    CNorm: random(bk, [n], 0.8, 1.2, 4),
    BBias: random(bk, [h, R, n], 0.5, 1.5, 5),
    CBias: random(bk, [h, R, n], 0.5, 1.5, 6),
    D: random(bk, [h], 0.5, 1.5, 7),
    mimoX: mimo(12),
    mimoZ: mimo(13),
    mimoO: mimo(14),
    normWeight: null,
    state: {
      theta: random(bk, [b, h, S], 0, 6, 8),
      ssm: random(bk, [b, h, p, n], -0.5, 0.5, 9),
      k: random(bk, [b, R, h, n], -1, 1, 10),
      x: random(bk, [b, h, p], -1, 1, 11),
    },
    dims: d,
  };
}

function dispose(s: Mamba3ScanArgs): void {
  for (const t of [s.y, s.proj, s.dtBias, s.BNorm, s.CNorm, s.BBias, s.CBias, s.D, s.mimoX, s.mimoZ, s.mimoO])
    t?.dispose();
  for (const t of Object.values(s.state!)) t.dispose();
}

/** Runs `fn`; a MambaError (a buffer beyond the device's limits) comes back as its message, to skip the row. */
async function tryRun(fn: () => Promise<void>): Promise<string | null> {
  try {
    await fn();
    return null;
  } catch (e) {
    if (!isMambaError(e)) throw e;
    return e.message;
  }
}

const bk = await backend();
const results: Record<string, unknown>[] = [];
try {
  // correctness on the device: each path against the CPU reference (y and the state it leaves)
  {
    const [b, l] = [2, 300];
    const c = cpu();
    const up = async (t: Tensor): Promise<Tensor> => c.upload(await t.readFloat(), [...t.shape]);
    for (const [path, chunk, R] of [
      ['sequential', 0, 1],
      ['chunked', 64, 1],
      ['chunked', 64, 4],
    ] as [SsdPath, number, number][]) {
      const d = dimsOf(4, 16, 32, R);
      const g = inputs(bk, b, l, d);
      const st = g.state!;
      const ref: Mamba3ScanArgs = { ...g, y: c.alloc([b, l, d.h * d.p]), proj: await up(g.proj), state: null };
      for (const k of ['dtBias', 'BNorm', 'CNorm', 'BBias', 'CBias', 'D'] as const) ref[k] = await up(g[k]);
      for (const k of ['mimoX', 'mimoZ', 'mimoO'] as const) ref[k] = g[k] ? await up(g[k]) : null;
      ref.state = { theta: await up(st.theta), ssm: await up(st.ssm), k: await up(st.k), x: await up(st.x) };
      Object.assign(bk.options, { ssdPath: path, ssdChunk: chunk });
      bk.mamba3Scan(g);
      c.mamba3Scan(ref);
      let err = 0,
        scale = 0;
      for (const [x, y] of [
        [g.y, ref.y],
        [st.ssm, ref.state.ssm],
      ]) {
        const [gx, cx] = [await x.readFloat(), c.readSync(y) as Float32Array];
        for (let i = 0; i < gx.length; i++) {
          err = Math.max(err, Math.abs(gx[i] - cx[i]));
          scale = Math.max(scale, Math.abs(cx[i]));
        }
      }
      console.log(
        `check ${path} ${chunk || ''} rank ${R} (b ${b}, l ${l}): y and H max abs error ${err.toExponential(2)} (max ${scale.toFixed(2)})`,
      );
      if (!(err < 1e-4 * Math.max(1, scale))) throw new Error(`mamba3 check failed (${path}): ${err}`);
      dispose(g);
    }
  }
  const rows: (string | number)[][] = [
    ['shape (b,l,h,p,n,R)', 'path', 'chunk', 'GPU ms', 'wall ms', 'vs scan', 'dispatches'],
  ];
  for (const s of o.shapes.split(',')) {
    const [b, l, h, p, n, R = 1] = s.split('x').map(Number);
    const args = inputs(bk, b, l, dimsOf(h, p, n, R));
    let scanMs = NaN;
    for (const [path, chunk] of configs) {
      Object.assign(bk.options, { ssdPath: path, ssdChunk: chunk });
      const skipped = await tryRun(async () => {
        await warmUp(1, async () => {
          bk.mamba3Scan(args);
          await bk.sync();
        });
      });
      if (skipped) {
        results.push({ kind: 'scan', shape: { b, l, h, p, n, R }, path, chunk, skipped });
        console.log(`(${b},${l},${h},${p},${n},${R}) ${path} ${chunk}: skipped (${skipped})`);
        continue;
      }
      const t = await timeCalls(
        bk,
        () => bk.mamba3Scan(args),
        () => true,
        reps,
      );
      if (path === 'sequential') scanMs = t.best;
      results.push({ kind: 'scan', shape: { b, l, h, p, n, R }, path, chunk, ...t });
      rows.push([
        `(${b},${l},${h},${p},${n},${R})`,
        path,
        chunk || '-',
        t.gpuMs.toFixed(3),
        t.wallMs.toFixed(3),
        (scanMs / t.best).toFixed(2),
        t.dispatches,
      ]);
      console.log(rows[rows.length - 1].join('  '));
    }
    dispose(args);
  }
  console.log(table(rows));
  if (o.model === 'true') {
    const d = Number(o['d-model']),
      V = Number(o.vocab),
      layers = Number(o.layers);
    const rng = new Rng(1234);
    const emb = filled(bk, [V, d], () => 0.02 * rng.normal());
    const mrows: (string | number)[][] = [['model', 'tokens', 'path', 'chunk', 'ms', 'tok/s', 'GPU ms', 'scan share']];
    for (const variant of ['mamba3-64', 'mimo4-64', 'mamba2-128']) {
      const m = variantModel(bk, parseVariant(variant), { d, P: 64, layers }, emb, 7);
      for (const tokens of o.lengths.split(',').map(Number)) {
        const ids = new Int32Array(tokens);
        for (let i = 0; i < tokens; i++) ids[i] = (i * 7919) % V;
        const idT = bk.upload(ids, [1, tokens], 'i32');
        const mcfg: [SsdPath, number][] =
          variant === 'mamba2-128'
            ? [['auto', 0]]
            : [['sequential', 0], ...chunks.map((q) => ['chunked', q] as [SsdPath, number])];
        for (const [path, chunk] of mcfg) {
          Object.assign(bk.options, { ssdPath: path, ssdChunk: chunk });
          const once = async (): Promise<void> => {
            m.forward(idT, { lastOnly: true }).dispose();
            await bk.sync();
          };
          const skipped = await tryRun(async () => {
            await warmUp(1, once);
          });
          if (skipped) {
            results.push({ kind: 'model', variant, tokens, path, chunk, skipped });
            console.log(`${variant} ${tokens} ${path} ${chunk}: skipped (${skipped})`);
            continue;
          }
          const times: number[] = [];
          for (let r = 0; r < Math.min(reps, 5); r++) {
            const t0 = performance.now();
            await once();
            times.push(performance.now() - t0);
          }
          times.sort((x, y) => x - y);
          const ms = times[Math.floor(times.length / 2)];
          let kernels: ReturnType<typeof byKernel> = [];
          if (bk.g.features.has('timestamp-query')) {
            bk.startProfile();
            m.forward(idT, { lastOnly: true }).dispose();
            kernels = byKernel(await bk.stopProfile());
          }
          const gpuMs = kernels.reduce((x, k) => x + k.ms, 0);
          const scan = kernels.filter((k) => k.kernel.startsWith('mamba3') || k.kernel.startsWith('ssd'));
          const share = scan.reduce((x, k) => x + k.ms, 0) / gpuMs;
          results.push({ kind: 'model', variant, tokens, path, chunk, ms, runsMs: times, gpuMs, kernels });
          mrows.push([
            variant,
            tokens,
            path,
            chunk || '-',
            ms.toFixed(2),
            ((tokens / ms) * 1000).toFixed(0),
            gpuMs.toFixed(2),
            share.toFixed(2),
          ]);
          console.log(mrows[mrows.length - 1].join('  '));
        }
        idT.dispose();
      }
    }
    console.log(table(mrows));
  }
  console.log('wrote', writeResult('mamba3-prefill', { machine: machine(bk), results }, o.out));
} finally {
  bk.dispose();
}
