import type { SelectiveScanArgs } from '../src/backend/contract/inference.js';
import type { SelectiveScanBackwardArgs } from '../src/backend/contract/training.js';
import { cpu } from '../src/backend/cpu/cpu-backend.js';
import type { WebGpuBackend } from '../src/backend/webgpu/webgpu-backend.js';
import { benchArgs } from '../src/cli/bench-suites.js';
import { isMambaError } from '../src/errors.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { backend, machine, random, table, timeCalls, warmUp, writeResult } from './webgpu-common.js';

/**
 * The selective scan forward and its gradient on WebGPU, f32, next to the official CUDA kernel's
 * fwd+bwd (../shared/docs/REFERENCE.md, H200, `selective_scan_fn`, f32). Inputs as webgpu-scan.ts:
 * z, D, delta bias and softplus (how Mamba calls it; REFERENCE does not say which optional inputs
 * its figure had), B and C views of one (b, l, 2n) buffer, no initial state; the backward writes
 * every gradient the official one does (du, dDelta, dA, dB, dC, dD, dz, dDeltaBias).
 *   node dist/bench/webgpu-scan-backward.js [options] (options and defaults: --help; src/cli/bench-suites.ts)
 * Time: GPU time from timestamp queries (sum of each call's dispatches, median over reps) of the
 * forward and the backward timed apart; fwd+bwd is their sum. Differences from the official figure:
 * its forward under autograd also stores chunk states for its backward, and its backward recomputes
 * the forward in the same kernel; ours (kernels/scan-backward.wgsl: five dispatches, chunked like the
 * forward) recomputes each chunk's states from the carries at chunk starts (--chunk: the chunk length,
 * default 16, at most 32 where the workgroup memory allows), so the forward timed here is the
 * inference one. The backward before the chunked rewrite (one thread per (sequence, channel) walking
 * the whole sequence) took fwd+bwd 10.0 / 25.3 / 31.0 ms on the three default shapes (H100,
 * 2026-12-07, bench/results/gpu-h100-2026-12-07b/README.md).
 */
const a = benchArgs('webgpu-scan-backward');
const shapes = a.shapes.split(',').map((s) => s.split('x').map(Number) as [number, number, number, number]);
const reps = a.reps;
/** Official fwd+bwd ms (H200, f32), by shape b x e x l x n. */
const OFFICIAL: Record<string, number> = { '1x1536x2048x16': 0.553, '4x2048x4096x16': 4.349, '8x5120x2048x16': 10.45 };

function inputs(bk: WebGpuBackend, b: number, l: number, e: number, n: number): SelectiveScanArgs {
  const bc = random(bk, [b, l, 2 * n], -1, 1, 7);
  return {
    y: bk.alloc([b, l, e]),
    u: random(bk, [b, l, e], -1, 1, 1),
    delta: random(bk, [b, l, e], -4, 0, 2),
    z: random(bk, [b, l, e], -2, 2, 3),
    A: random(bk, [e, n], -4, -0.1, 4),
    B: bc.narrow(0, n),
    C: bc.narrow(n, n),
    D: random(bk, [e], 0.5, 1.5, 5),
    deltaBias: random(bk, [e], -1, 0, 6),
    deltaSoftplus: true,
    h0: null,
    hOut: null,
  };
}

/** The gradient's arguments for the forward's inputs `f`: a random dy, and every gradient but dh0. */
function gradients(bk: WebGpuBackend, f: SelectiveScanArgs, chunk: number): SelectiveScanBackwardArgs {
  const [b, l, e] = f.u.shape;
  const n = f.A.shape[1];
  return {
    u: f.u,
    delta: f.delta,
    z: f.z,
    A: f.A,
    B: f.B,
    C: f.C,
    D: f.D,
    deltaBias: f.deltaBias,
    deltaSoftplus: f.deltaSoftplus,
    h0: null,
    dy: random(bk, [b, l, e], -1, 1, 8),
    du: bk.alloc([b, l, e]),
    dDelta: bk.alloc([b, l, e]),
    dA: bk.alloc([e, n]),
    dB: bk.alloc([b, l, n]), // apart: one kernel's outputs may not share a GPU buffer
    dC: bk.alloc([b, l, n]),
    dD: bk.alloc([e]),
    dz: bk.alloc([b, l, e]),
    dDeltaBias: bk.alloc([e]),
    dh0: null,
    chunk,
  };
}

function dispose(f: SelectiveScanArgs, g: SelectiveScanBackwardArgs): void {
  for (const t of [f.y, f.u, f.delta, f.z!, f.A, f.B.base!, f.D!, f.deltaBias!]) t.dispose();
  for (const t of [g.dy, g.du, g.dDelta, g.dA, g.dB, g.dC, g.dD!, g.dz!, g.dDeltaBias!]) t.dispose();
}

const bk = await backend();
try {
  // correctness on the device: a small backward against the CPU reference, each gradient's largest
  // error relative to its largest magnitude (sums over l and b cancel, so elementwise is too strict)
  {
    const [b, l, e, n] = [2, 300, 96, 16];
    const f = inputs(bk, b, l, e, n);
    const g = gradients(bk, f, a.chunk);
    bk.selectiveScanBackward(g);
    const c = cpu();
    const up = async (t: Tensor | null): Promise<Tensor | null> =>
      t ? c.upload(await t.readFloat(), [...t.shape]) : null;
    const bc = (await up(f.B.base!))!;
    const ref: SelectiveScanBackwardArgs = {
      u: (await up(f.u))!,
      delta: (await up(f.delta))!,
      z: await up(f.z),
      A: (await up(f.A))!,
      B: bc.narrow(0, n),
      C: bc.narrow(n, n),
      D: await up(f.D),
      deltaBias: await up(f.deltaBias),
      deltaSoftplus: true,
      h0: null,
      dy: (await up(g.dy))!,
      du: c.alloc([b, l, e]),
      dDelta: c.alloc([b, l, e]),
      dA: c.alloc([e, n]),
      dB: c.alloc([b, l, n]),
      dC: c.alloc([b, l, n]),
      dD: c.alloc([e]),
      dz: c.alloc([b, l, e]),
      dDeltaBias: c.alloc([e]),
      dh0: null,
      chunk: a.chunk,
    };
    c.selectiveScanBackward!(ref);
    let worst = 0;
    for (const k of ['du', 'dDelta', 'dA', 'dB', 'dC', 'dD', 'dz', 'dDeltaBias'] as const) {
      const [gv, cv] = [await g[k]!.readFloat(), c.readSync(ref[k]!) as Float32Array];
      let [diff, mag] = [0, 0];
      for (let i = 0; i < gv.length; i++) {
        diff = Math.max(diff, Math.abs(gv[i] - cv[i]));
        mag = Math.max(mag, Math.abs(cv[i]));
      }
      worst = Math.max(worst, diff / (mag || 1));
    }
    console.log(
      `check (b, l, e, n) = (${b}, ${l}, ${e}, ${n}) backward vs CPU: max relative error ${worst.toExponential(2)}`,
    );
    if (!(worst < 1e-3)) throw new Error(`scan backward check failed: ${worst}`);
    dispose(f, g);
  }
  const results: Record<string, unknown>[] = [];
  const rows: (string | number)[][] = [
    ['shape (b,e,l,n)', 'fwd ms', 'bwd ms', 'fwd+bwd ms', 'official ms', 'speed-up'],
  ];
  for (const [b, e, l, n] of shapes) {
    const key = `${b}x${e}x${l}x${n}`;
    const official = OFFICIAL[key];
    let f: SelectiveScanArgs | undefined, g: SelectiveScanBackwardArgs | undefined;
    try {
      f = inputs(bk, b, l, e, n);
      g = gradients(bk, f, a.chunk);
      const [fa, ga] = [f, g];
      await warmUp(1, async () => {
        for (let i = 0; i < 3; i++) {
          bk.selectiveScan(fa);
          bk.selectiveScanBackward(ga);
        }
        await bk.sync();
      });
      const fwd = await timeCalls(
        bk,
        () => bk.selectiveScan(fa),
        (k) => k.startsWith('scan') || k === 'copy',
        reps,
      );
      const bwd = await timeCalls(
        bk,
        () => bk.selectiveScanBackward(ga),
        (k) => k.startsWith('scanBackward.'),
        reps,
      );
      // GPU time when timestamp queries exist, else wall clock (calls queued back to back)
      const ms = (t: typeof fwd) => (Number.isFinite(t.gpuMs) ? t.gpuMs : t.wallMs);
      const [fwdMs, bwdMs] = [ms(fwd), ms(bwd)];
      const r = {
        shape: { b, e, l, n },
        chunk: a.chunk,
        fwdMs,
        bwdMs,
        fwdBwdMs: fwdMs + bwdMs,
        officialFwdBwdMs: official,
        speedUp: official ? official / (fwdMs + bwdMs) : undefined,
        fwd,
        bwd,
      };
      results.push(r);
      rows.push([
        `(${b},${e},${l},${n})`,
        fwdMs.toFixed(3),
        bwdMs.toFixed(3),
        r.fwdBwdMs.toFixed(3),
        official ?? '-',
        r.speedUp ? r.speedUp.toFixed(2) + 'x' : '-',
      ]);
      // where the backward's time goes, entry point by entry point (the median run)
      for (const k of bwd.kernels)
        console.log(
          `    ${k.kernel}: ${k.ms.toFixed(3)} ms (${(100 * k.share).toFixed(1)}%, ${k.dispatches} dispatches)`,
        );
    } catch (err) {
      // a shape this device cannot hold (buffer limits) is reported, and the others still run
      if (!isMambaError(err)) throw err;
      results.push({ shape: { b, e, l, n }, chunk: a.chunk, error: `${err.code}: ${err.message}` });
      rows.push([`(${b},${e},${l},${n})`, err.code, '-', '-', official ?? '-', '-']);
    }
    console.log(rows[rows.length - 1].join('  '));
    if (f && g) dispose(f, g);
  }
  console.log(table(rows));
  console.log('wrote', writeResult(a.name, { machine: machine(bk), results }, a.out));
} finally {
  bk.dispose();
}
