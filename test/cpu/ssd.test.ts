import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSsdScan, type SsdScanArgs } from '../../src/backend/contract/inference.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { ssdSequentialScan } from '../../src/backend/cpu/reference/ssd-sequential.js';
import { isMambaError } from '../../src/errors.js';
import { Mamba2Mixer, type Mamba2Dims } from '../../src/mixers/mamba2.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { maxAbsDiff } from '../helpers/fixtures.js';
import { rand } from '../helpers/random.js';

/**
 * Mamba-2's SSD kernels on the CPU: the chunked scan against (a) the sequential recurrence of
 * `ssd-sequential.ts`, (b) the quadratic "dual" form written out here from the paper (y = M x with
 * M[t,s] = C_t·B_s · exp(a_{s+1} + ... + a_t) · dt_s), (c) itself fed one step at a time and in
 * pieces; odd sizes throughout (chunks not dividing l, several groups, views). Then the gated RMSNorm
 * against its formula, and the mixer's treatment of time_step_limit (the reference's, see mamba2.ts).
 */
const bk = cpu();

const softplus = (x: number): number => (x > 20 ? x : Math.log1p(Math.exp(x)));

interface Problem {
  b: number;
  l: number;
  h: number;
  p: number;
  g: number;
  n: number;
  x: Float32Array;
  dt: Float32Array;
  A: Float32Array;
  B: Float32Array;
  C: Float32Array;
  D: Float32Array;
  dtBias: Float32Array;
  h0: Float32Array;
}

function problem(b: number, l: number, h: number, p: number, g: number, n: number, seed: number): Problem {
  return {
    b,
    l,
    h,
    p,
    g,
    n,
    x: rand(b * l * h * p, seed + 1),
    dt: rand(b * l * h, seed + 2, 2),
    A: Float32Array.from(rand(h, seed + 3), (v) => -Math.exp(v * 3)), // -exp(A_log), A_log in (-1.5, 1.5)
    B: rand(b * l * g * n, seed + 4),
    C: rand(b * l * g * n, seed + 5),
    D: rand(h, seed + 6),
    dtBias: Float32Array.from(rand(h, seed + 7), (v) => v * 2 - 1),
    h0: rand(b * h * p * n, seed + 8),
  };
}

/**
 * Uploads a problem with x, B, C as column windows of one packed (b, l, 3 + e + 2gn) tensor (as the
 * conv's output is used) and dt as a window of another, so the kernel is exercised on views.
 */
function args(
  pr: Problem,
  o: {
    chunkSize: number;
    dtLimit?: readonly [number, number];
    withState?: boolean;
    h0?: Tensor | null;
    hOut?: Tensor | null;
    dtSoftplus?: boolean;
  },
): SsdScanArgs {
  const { b, l, h, p, g, n } = pr;
  const e = h * p,
    gn = g * n,
    W = 3 + e + 2 * gn;
  const packed = new Float32Array(b * l * W);
  const dtPacked = new Float32Array(b * l * (h + 2));
  for (let r = 0; r < b * l; r++) {
    packed.set(pr.x.subarray(r * e, (r + 1) * e), r * W + 3);
    packed.set(pr.B.subarray(r * gn, (r + 1) * gn), r * W + 3 + e);
    packed.set(pr.C.subarray(r * gn, (r + 1) * gn), r * W + 3 + e + gn);
    dtPacked.set(pr.dt.subarray(r * h, (r + 1) * h), r * (h + 2) + 1);
  }
  const xt = bk.upload(packed, [b, l, W]);
  const dtt = bk.upload(dtPacked, [b, l, h + 2]);
  const withState = o.withState ?? true;
  return {
    y: bk.alloc([b, l, e]),
    x: xt.narrow(3, e),
    dt: dtt.narrow(1, h),
    A: bk.upload(pr.A, [h]),
    B: xt.narrow(3 + e, gn),
    C: xt.narrow(3 + e + gn, gn),
    D: bk.upload(pr.D, [h]),
    dtBias: bk.upload(pr.dtBias, [h]),
    dtSoftplus: o.dtSoftplus ?? true,
    dtLimit: o.dtLimit ?? [0, Infinity],
    nGroups: g,
    chunkSize: o.chunkSize,
    h0: o.h0 !== undefined ? o.h0 : withState ? bk.upload(pr.h0, [b, h, p, n]) : null,
    hOut: o.hOut !== undefined ? o.hOut : bk.alloc([b, h, p, n]),
  };
}

/** The SSD "dual" (quadratic, attention-like) form over the whole sequence, written from the paper in f64. */
function dualForm(
  pr: Problem,
  lim: readonly [number, number],
  withState: boolean,
): { y: Float64Array; hl: Float64Array } {
  const { b, l, h, p, g, n } = pr;
  const e = h * p,
    gn = g * n;
  const y = new Float64Array(b * l * e),
    hl = new Float64Array(b * h * p * n);
  for (let bi = 0; bi < b; bi++)
    for (let hd = 0; hd < h; hd++) {
      const gi = Math.floor(hd / (h / g));
      const dt = Array.from({ length: l }, (_, t) =>
        Math.min(Math.max(softplus(pr.dt[(bi * l + t) * h + hd] + pr.dtBias[hd]), lim[0]), lim[1]),
      );
      const a = dt.map((v) => v * pr.A[hd]);
      const Bv = (t: number, k: number): number => pr.B[(bi * l + t) * gn + gi * n + k];
      const Cv = (t: number, k: number): number => pr.C[(bi * l + t) * gn + gi * n + k];
      const xv = (t: number, c: number): number => pr.x[(bi * l + t) * e + hd * p + c];
      const h0 = (c: number, k: number): number => (withState ? pr.h0[((bi * h + hd) * p + c) * n + k] : 0);
      const sumA = (s: number, t: number): number => {
        let v = 0;
        for (let r = s; r <= t; r++) v += a[r];
        return v;
      }; // a_s + ... + a_t
      for (let t = 0; t < l; t++) {
        for (let c = 0; c < p; c++) {
          let acc = 0;
          for (let s = 0; s <= t; s++) {
            let cb = 0;
            for (let k = 0; k < n; k++) cb += Cv(t, k) * Bv(s, k);
            acc += cb * Math.exp(sumA(s + 1, t)) * dt[s] * xv(s, c);
          }
          let ch = 0;
          for (let k = 0; k < n; k++) ch += Cv(t, k) * h0(c, k);
          y[(bi * l + t) * e + hd * p + c] = acc + Math.exp(sumA(0, t)) * ch + pr.D[hd] * xv(t, c);
        }
      }
      for (let c = 0; c < p; c++)
        for (let k = 0; k < n; k++) {
          let v = Math.exp(sumA(0, l - 1)) * h0(c, k);
          for (let s = 0; s < l; s++) v += Math.exp(sumA(s + 1, l - 1)) * dt[s] * xv(s, c) * Bv(s, k);
          hl[((bi * h + hd) * p + c) * n + k] = v;
        }
    }
  return { y, hl };
}

const SIZES = [
  // b, l, h, p, g, n
  [1, 1, 1, 1, 1, 1],
  [2, 13, 6, 5, 3, 7],
  [3, 9, 4, 3, 1, 8],
  [1, 17, 8, 2, 4, 3],
] as const;

test('ssdScan (chunked) equals the dual quadratic form and the sequential recurrence, any chunk size, several groups, views', () => {
  for (const [b, l, h, p, g, n] of SIZES) {
    const pr = problem(b, l, h, p, g, n, 100 + l);
    for (const withState of [false, true]) {
      const want = dualForm(pr, [0, Infinity], withState);
      const seq = args(pr, { chunkSize: 1, withState });
      ssdSequentialScan(bk.ssdViews(seq), checkSsdScan(seq));
      assert.ok(maxAbsDiff(bk.readSync(seq.y), want.y) < 1e-5, `sequential y ${[b, l, h, p, g, n]}`);
      assert.ok(maxAbsDiff(bk.readSync(seq.hOut!), want.hl) < 1e-5, `sequential state ${[b, l, h, p, g, n]}`);
      for (const Q of [1, 2, 3, 4, 5, l, l + 3, 256]) {
        const a = args(pr, { chunkSize: Q, withState });
        bk.ssdScan(a);
        const ey = maxAbsDiff(bk.readSync(a.y), bk.readSync(seq.y));
        const eh = maxAbsDiff(bk.readSync(a.hOut!), bk.readSync(seq.hOut!));
        assert.ok(
          ey < 1e-5 && eh < 1e-5,
          `sizes ${[b, l, h, p, g, n]} chunk ${Q} state ${withState}: y ${ey}, h ${eh}`,
        );
      }
    }
  }
});

test('ssdScan one token at a time (h0 = hOut, the recurrent step) equals the whole sequence', () => {
  const [b, l, h, p, g, n] = [2, 11, 6, 4, 2, 5];
  const pr = problem(b, l, h, p, g, n, 7);
  const whole = args(pr, { chunkSize: 4 });
  bk.ssdScan(whole);
  const yWhole = bk.readSync(whole.y) as Float32Array;
  const state = bk.upload(pr.h0, [b, h, p, n]);
  const e = h * p;
  let worst = 0;
  for (let t = 0; t < l; t++) {
    const one = slice(pr, t, t + 1);
    const a = args(one, { chunkSize: 256, h0: state, hOut: state });
    bk.ssdScan(a);
    const y = bk.readSync(a.y);
    for (let bi = 0; bi < b; bi++)
      worst = Math.max(
        worst,
        maxAbsDiff(y.subarray(bi * e, (bi + 1) * e), yWhole.subarray((bi * l + t) * e, (bi * l + t + 1) * e)),
      );
  }
  assert.ok(worst < 1e-5, `step vs whole: ${worst}`);
  assert.ok(maxAbsDiff(bk.readSync(state), bk.readSync(whole.hOut!)) < 1e-5);
});

test('ssdScan fed in pieces with a carried state equals the whole, whatever the pieces and chunk boundaries', () => {
  const [b, l, h, p, g, n] = [2, 23, 4, 3, 2, 6];
  const pr = problem(b, l, h, p, g, n, 9);
  const e = h * p;
  for (const Q of [4, 5, 64]) {
    const whole = args(pr, { chunkSize: Q });
    bk.ssdScan(whole);
    const yWhole = bk.readSync(whole.y);
    for (const cuts of [[1], [5, 6, 17], [3, 8, 13, 22], [12]]) {
      const state = bk.upload(pr.h0, [b, h, p, n]);
      const bounds = [0, ...cuts, l];
      let worst = 0;
      for (let i = 0; i + 1 < bounds.length; i++) {
        const t0 = bounds[i],
          t1 = bounds[i + 1];
        const a = args(slice(pr, t0, t1), { chunkSize: Q, h0: state, hOut: state });
        bk.ssdScan(a);
        const y = bk.readSync(a.y);
        for (let bi = 0; bi < b; bi++) {
          worst = Math.max(
            worst,
            maxAbsDiff(
              y.subarray(bi * (t1 - t0) * e, (bi + 1) * (t1 - t0) * e),
              yWhole.subarray((bi * l + t0) * e, (bi * l + t1) * e),
            ),
          );
        }
      }
      assert.ok(worst < 1e-5, `chunk ${Q} cuts ${cuts}: ${worst}`);
      assert.ok(maxAbsDiff(bk.readSync(state), bk.readSync(whole.hOut!)) < 1e-5);
    }
  }
});

test('ssdScan clamps dt to dtLimit (after softplus) and skips softplus when asked', () => {
  const [b, l, h, p, g, n] = [2, 10, 4, 3, 2, 4];
  const pr = problem(b, l, h, p, g, n, 21);
  const lim = [0.4, 0.9] as const;
  const want = dualForm(pr, lim, true);
  const a = args(pr, { chunkSize: 3, dtLimit: lim });
  bk.ssdScan(a);
  assert.ok(maxAbsDiff(bk.readSync(a.y), want.y) < 1e-5);
  const free = args(pr, { chunkSize: 3 });
  bk.ssdScan(free);
  assert.ok(maxAbsDiff(bk.readSync(a.y), bk.readSync(free.y)) > 1e-3, 'the limit must bind in this problem');
  // Without softplus the raw dt + bias is used (here made positive first).
  const pos = { ...pr, dt: Float32Array.from(pr.dt, (v) => Math.abs(v) + 1), dtBias: new Float32Array(h) };
  const raw = args(pos, { chunkSize: 4, dtSoftplus: false });
  bk.ssdScan(raw);
  const seq = args(pos, { chunkSize: 1, dtSoftplus: false });
  ssdSequentialScan(bk.ssdViews(seq), checkSsdScan(seq));
  assert.ok(maxAbsDiff(bk.readSync(raw.y), bk.readSync(seq.y)) < 1e-5);
  const sp = args(pos, { chunkSize: 4 });
  bk.ssdScan(sp);
  assert.ok(maxAbsDiff(bk.readSync(raw.y), bk.readSync(sp.y)) > 1e-4);
});

test('ssdScan refuses wrong shapes and group counts with the argument named', () => {
  const pr = problem(1, 4, 4, 2, 2, 3, 33);
  const a = args(pr, { chunkSize: 2 });
  assert.throws(
    () => bk.ssdScan({ ...a, nGroups: 3 }),
    (e: unknown) =>
      isMambaError(e, 'BAD_ARGUMENT') && /nGroups must be a positive divisor of the 4 heads, got 3/.test(e.message),
  );
  assert.throws(
    () => bk.ssdScan({ ...a, dt: bk.alloc([1, 4, 3]) }),
    (e: unknown) =>
      isMambaError(e, 'SHAPE_MISMATCH') && /ssdScan: dt has shape \(1, 4, 3\), expected \(1, 4, 4\)/.test(e.message),
  );
  assert.throws(
    () => bk.ssdScan({ ...a, hOut: bk.alloc([1, 4, 3, 2]) }),
    (e: unknown) =>
      isMambaError(e, 'SHAPE_MISMATCH') && /hOut has shape \(1, 4, 3, 2\), expected \(1, 4, 2, 3\)/.test(e.message),
  );
  assert.throws(
    () => bk.ssdScan({ ...a, chunkSize: 0 }),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /chunkSize/.test(e.message),
  );
  assert.throws(
    () => bk.ssdScan({ ...a, A: bk.alloc([4, 1]) }),
    (e: unknown) => isMambaError(e, 'SHAPE_MISMATCH') && /A must be \(h\)/.test(e.message),
  );
  assert.throws(
    () => bk.ssdScan({ ...a, dtLimit: [1, 0] }),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /dtLimit/.test(e.message),
  );
});

/** Rows [t0, t1) of every sequence of a problem (the state is not sliced: it is the carry). */
function slice(pr: Problem, t0: number, t1: number): Problem {
  const { b, l, h, p, g, n } = pr;
  const cut = (a: Float32Array, w: number): Float32Array => {
    const out = new Float32Array(b * (t1 - t0) * w);
    for (let bi = 0; bi < b; bi++) out.set(a.subarray((bi * l + t0) * w, (bi * l + t1) * w), bi * (t1 - t0) * w);
    return out;
  };
  return { ...pr, l: t1 - t0, x: cut(pr.x, h * p), dt: cut(pr.dt, h), B: cut(pr.B, g * n), C: cut(pr.C, g * n) };
}

// ---- gated RMSNorm ----------------------------------------------------------------------------

test('gatedRmsnorm: gate then norm, norm then gate, per group, without a gate', () => {
  const [m, e] = [5, 12];
  const x = rand(m * e, 41),
    z = rand(m * e, 42, 2),
    w = rand(e, 43);
  const silu = (v: number): number => v / (1 + Math.exp(-v));
  for (const groupSize of [12, 6, 4, 1])
    for (const normBeforeGate of [false, true])
      for (const gated of [true, false]) {
        const want = new Float64Array(m * e);
        for (let r = 0; r < m; r++)
          for (let g0 = 0; g0 < e; g0 += groupSize) {
            const v = Array.from(
              { length: groupSize },
              (_, j) => x[r * e + g0 + j] * (gated && !normBeforeGate ? silu(z[r * e + g0 + j]) : 1),
            );
            const inv = 1 / Math.sqrt(v.reduce((s, q) => s + q * q, 0) / groupSize + 1e-5);
            v.forEach(
              (q, j) =>
                (want[r * e + g0 + j] = q * inv * w[g0 + j] * (gated && normBeforeGate ? silu(z[r * e + g0 + j]) : 1)),
            );
          }
        const opts = { groupSize, eps: 1e-5, normBeforeGate };
        const out = bk.alloc([m, e]);
        bk.gatedRmsnorm(out, bk.upload(x, [m, e]), gated ? bk.upload(z, [m, e]) : null, bk.upload(w, [e]), opts);
        assert.ok(
          maxAbsDiff(bk.readSync(out), want) < 1e-5,
          `group ${groupSize} normBeforeGate ${normBeforeGate} gated ${gated}`,
        );
      }
  // Views, as the mixer passes them: z a column window of in_proj's output, x another.
  const packed = new Float32Array(m * (2 * e + 3));
  for (let r = 0; r < m; r++) {
    packed.set(z.subarray(r * e, (r + 1) * e), r * (2 * e + 3) + 1);
    packed.set(x.subarray(r * e, (r + 1) * e), r * (2 * e + 3) + 1 + e);
  }
  const pk = bk.upload(packed, [m, 2 * e + 3]);
  const wide = bk.zeros([m, e + 2]);
  const dense = bk.alloc([m, e]);
  bk.gatedRmsnorm(wide.narrow(1, e), pk.narrow(1 + e, e), pk.narrow(1, e), bk.upload(w, [e]), {
    groupSize: 4,
    eps: 1e-5,
    normBeforeGate: false,
  });
  bk.gatedRmsnorm(dense, bk.upload(x, [m, e]), bk.upload(z, [m, e]), bk.upload(w, [e]), {
    groupSize: 4,
    eps: 1e-5,
    normBeforeGate: false,
  });
  assert.deepEqual(bk.readSync(wide.narrow(1, e)), bk.readSync(dense));
  assert.equal((bk.readSync(wide) as Float32Array)[e + 1], 0);
  // transformers' ungrouped norm and mamba_ssm's grouped one differ as soon as there are two groups.
  const one = bk.alloc([m, e]),
    two = bk.alloc([m, e]);
  bk.gatedRmsnorm(one, bk.upload(x, [m, e]), bk.upload(z, [m, e]), bk.upload(w, [e]), {
    groupSize: e,
    eps: 1e-5,
    normBeforeGate: false,
  });
  bk.gatedRmsnorm(two, bk.upload(x, [m, e]), bk.upload(z, [m, e]), bk.upload(w, [e]), {
    groupSize: e / 2,
    eps: 1e-5,
    normBeforeGate: false,
  });
  assert.ok(maxAbsDiff(bk.readSync(one), bk.readSync(two)) > 1e-3);
  assert.throws(
    () =>
      bk.gatedRmsnorm(one, bk.upload(x, [m, e]), null, bk.upload(w, [e]), {
        groupSize: 5,
        eps: 1e-5,
        normBeforeGate: false,
      }),
    (err: unknown) =>
      isMambaError(err, 'BAD_ARGUMENT') &&
      /groupSize must be a positive divisor of the row width 12, got 5/.test(err.message),
  );
});

// ---- the mixer and time_step_limit ------------------------------------------------------------

/** A Mamba-2 mixer with random weights whose dt (softplus(dt + dt_bias) ~ 1..4) exceeds a limit of 0.5. */
function mixer(timeStepLimit: readonly [number, number]): Mamba2Mixer {
  const dims: Mamba2Dims = {
    d: 8,
    h: 4,
    p: 3,
    g: 2,
    n: 5,
    k: 3,
    chunkSize: 4,
    timeStepLimit,
    normEps: 1e-5,
    normGroupSize: 12,
    normBeforeGate: false,
  };
  const e = 12,
    c = e + 2 * 2 * 5,
    W = 2 * e + 2 * 2 * 5 + 4;
  const up = (n: number, seed: number, shape: number[], scale = 0.4): Tensor => bk.upload(rand(n, seed, scale), shape);
  return new Mamba2Mixer(
    bk,
    {
      inProj: up(W * 8, 51, [W, 8]),
      inProjBias: null,
      convWeight: up(c * 3, 52, [c, 3], 0.8),
      convBias: up(c, 53, [c]),
      dtBias: bk.upload(
        Float32Array.from(rand(4, 54), (v) => 2 + v * 2),
        [4],
      ),
      ALog: up(4, 55, [4]),
      D: up(4, 56, [4]),
      normWeight: bk.upload(
        Float32Array.from(rand(e, 57), (v) => 1 + v * 0.2),
        [e],
      ),
      outProj: up(8 * e, 58, [8, e]),
      outProjBias: null,
    },
    dims,
  );
}

test('time_step_limit clamps dt in the parallel form only; the step leaves dt unclamped, as transformers and mamba_ssm do', () => {
  // REFERENCE.md §2 says dt is "clamped to time_step_limit"; transformers 5.17's Mamba2Mixer passes
  // dt_limit to mamba2_chunk_scan only (mamba2_selective_state_update has no limit), and mamba_ssm's
  // Mamba2.step likewise. The reference wins: forward clamps, step does not.
  const [b, l, d] = [2, 7, 8];
  const xs = bk.upload(rand(b * l * d, 61, 2), [b, l, d]);
  const limited = mixer([0, 0.5]),
    free = mixer([0, Infinity]);
  const yLimited = bk.readSync(limited.forward(xs)),
    yFree = bk.readSync(free.forward(xs));
  assert.ok(maxAbsDiff(yLimited, yFree) > 1e-3, 'the limit binds in the parallel form');
  const st = limited.initState(b);
  const out = bk.alloc([b, d]);
  const steps = new Float32Array(b * l * d);
  const xh = bk.readSync(xs) as Float32Array;
  for (let t = 0; t < l; t++) {
    const xt = bk.upload(
      Float32Array.from({ length: b * d }, (_, i) => xh[(Math.floor(i / d) * l + t) * d + (i % d)]),
      [b, d],
    );
    limited.step(xt, out, st);
    const o = bk.readSync(out);
    for (let bi = 0; bi < b; bi++) steps.set(o.subarray(bi * d, (bi + 1) * d), (bi * l + t) * d);
  }
  assert.ok(maxAbsDiff(steps, yFree) < 1e-5, `steps equal the unclamped parallel form: ${maxAbsDiff(steps, yFree)}`);
  // With the default (0, inf) limit, which every published checkpoint uses, the two forms agree.
  const st2 = free.initState(b);
  free.forward(xs, st2);
  const st3 = free.initState(b);
  for (let t = 0; t < l; t++) {
    const xt = bk.upload(
      Float32Array.from({ length: b * d }, (_, i) => xh[(Math.floor(i / d) * l + t) * d + (i % d)]),
      [b, d],
    );
    free.step(xt, out, st3);
  }
  assert.ok(maxAbsDiff(bk.readSync(st2.ssm!), bk.readSync(st3.ssm!)) < 1e-5);
  assert.ok(maxAbsDiff(bk.readSync(st2.conv!), bk.readSync(st3.conv!)) < 1e-6);
});
