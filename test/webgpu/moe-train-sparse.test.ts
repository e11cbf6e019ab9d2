import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { backward } from '../../src/autograd/backward.js';
import { combinePairs, expertProduct, moePairs } from '../../src/ops/moe-sparse.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

// The sparse training form of a mixture of experts on WebGPU (ops/moe-sparse.ts, kernels/moe-train.ts):
// two expert products over the (token, slot) pairs and the combine, forward and every gradient (the
// tokens' rows, both stacks, the dense routing weights) against a float64 reference written from the
// definition (out[r] = Σ_e W[r, e] · down_e(up_e(x[r])) over the chosen e), at odd sizes: an expert chosen
// by every token, one chosen by none, a row with an empty slot, more rows and columns than one 64 tile.

after(disposeGpu);

/** Deterministic numbers in [-1, 1). */
function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

/** Dense routing weights (m, E): expert 0 for every row, E - 1 for none, K - 1 others (row 0: one fewer, an empty slot). */
function routing(m: number, E: number, K: number, seed: number): Float32Array {
  const W = new Float32Array(m * E);
  const r = rand(m * E, seed);
  for (let i = 0; i < m; i++) {
    W[i * E] = 0.25 + Math.abs(r[i * E]);
    const want = i === 0 ? K - 2 : K - 1;
    for (let c = 0, e = 1 + (i % (E - 2)); c < want; c++, e = 1 + (e % (E - 2)))
      W[i * E + e] = 0.1 + Math.abs(r[i * E + e]);
  }
  return W;
}

interface Case {
  m: number;
  E: number;
  K: number;
  d: number;
  I: number;
}

/** Forward and gradients in float64: up (E·I, d), down (E·d, I), upstream G (m, d). */
function reference(c: Case, x: Float32Array, W: Float32Array, up: Float32Array, down: Float32Array, G: Float32Array) {
  const { m, E, d, I } = c;
  const out = new Float64Array(m * d),
    dx = new Float64Array(m * d),
    dW = new Float64Array(m * E),
    dUp = new Float64Array(E * I * d),
    dDown = new Float64Array(E * d * I);
  for (let r = 0; r < m; r++)
    for (let e = 0; e < E; e++) {
      const w = W[r * E + e];
      if (w === 0) continue;
      const u = new Float64Array(I),
        z = new Float64Array(d);
      for (let i = 0; i < I; i++) for (let k = 0; k < d; k++) u[i] += up[(e * I + i) * d + k] * x[r * d + k];
      for (let j = 0; j < d; j++) for (let i = 0; i < I; i++) z[j] += down[(e * d + j) * I + i] * u[i];
      let gz = 0;
      const dz = new Float64Array(d),
        du = new Float64Array(I);
      for (let j = 0; j < d; j++) {
        out[r * d + j] += w * z[j];
        gz += G[r * d + j] * z[j];
        dz[j] = w * G[r * d + j];
      }
      dW[r * E + e] = gz;
      for (let j = 0; j < d; j++)
        for (let i = 0; i < I; i++) {
          dDown[(e * d + j) * I + i] += dz[j] * u[i];
          du[i] += down[(e * d + j) * I + i] * dz[j];
        }
      for (let i = 0; i < I; i++)
        for (let k = 0; k < d; k++) {
          dUp[(e * I + i) * d + k] += du[i] * x[r * d + k];
          dx[r * d + k] += up[(e * I + i) * d + k] * du[i];
        }
    }
  return { out, dx, dW, dUp, dDown };
}

function close(what: string, got: Float32Array, want: Float64Array): void {
  assert.equal(got.length, want.length, what);
  let scale = 1e-3,
    err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    err = Math.max(err, Math.abs(got[i] - want[i]));
  }
  assert.ok(err <= 1e-5 * scale, `${what}: max abs error ${err} (largest ${scale})`);
}

const CASES: Case[] = [
  { m: 7, E: 5, K: 2, d: 13, I: 9 },
  { m: 11, E: 6, K: 3, d: 17, I: 7 },
  { m: 70, E: 7, K: 3, d: 67, I: 65 },
];

for (const c of CASES)
  for (const blocks of [false, true])
    test(`sparse MoE training form on WebGPU, m ${c.m} E ${c.E} top-${c.K} d ${c.d} I ${c.I}${blocks ? ', down as per-expert views' : ''}: forward and gradients match the reference`, async (t) => {
      const g = await requireAdapter(t);
      if (!g) return;
      const { m, E, K, d, I } = c;
      const xs = rand(m * d, 1),
        Ws = routing(m, E, K, 2),
        ups = rand(E * I * d, 3),
        downs = rand(E * d * I, 4),
        Gs = rand(m * d, 5);
      for (let e = 0; e < E; e++) if (e === E - 1) ups.fill(Number.NaN, e * I * d, (e + 1) * I * d); // never read
      const x = g.upload(xs, [m, d]),
        W = g.upload(Ws, [m, E]),
        up = g.upload(ups, [E * I, d]),
        down = g.upload(downs, [E * d, I]);
      for (const p of [x, W, up]) p.requiresGrad = true;
      const views = blocks
        ? Array.from({ length: E }, (_, e) => {
            const v = new Tensor(g, down.storage, [d, I], 'f32', e * d * I, I, down);
            v.requiresGrad = true;
            return v;
          })
        : null;
      if (!blocks) down.requiresGrad = true;
      const pairs = moePairs(W, K);
      const u = expertProduct(x, up, null, pairs, true); // (m·K, I)
      const z = expertProduct(u, down, views, pairs, false); // (m·K, d)
      const out = combinePairs(z, W, pairs); // (m, d)
      const want = reference(
        c,
        xs,
        Ws,
        ups.map((v) => (Number.isNaN(v) ? 0 : v)),
        downs,
        Gs,
      );
      close('out', await out.readFloat(), want.out);
      backward(out, g.upload(Gs, [m, d]));
      close('dx', await x.grad!.readFloat(), want.dx);
      close('dW (routing)', await W.grad!.readFloat(), want.dW);
      // the unchosen expert's rows of dUp are zeros (NaN weights never read)
      close('dUp', await up.grad!.readFloat(), want.dUp);
      if (views) {
        const all = new Float32Array(E * d * I);
        for (let e = 0; e < E; e++) all.set(await views[e].grad!.readFloat(), e * d * I);
        close('dDown (per expert)', all, want.dDown);
      } else close('dDown', await down.grad!.readFloat(), want.dDown);
    });
