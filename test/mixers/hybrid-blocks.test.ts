import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { CausalSelfAttention } from '../../src/mixers/causal-attention.js';
import { Mlp } from '../../src/mixers/mlp.js';
import { MixtureOfExperts, type MoeOptions } from '../../src/mixers/moe.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { randomArray } from '../helpers/compare.js';

/**
 * The hybrids' building blocks against formulas written here: grouped-query attention equals
 * attention over repeated key/value heads; the causal self-attention's cached step equals its parallel
 * form (GQA, partial rotary, biases, a cache that grows); the three MoE routings by hand; and a MoE that
 * runs only the chosen experts equals the dense weighted sum over all of them.
 */
const bk = cpu();
const up = (data: Float32Array, shape: number[]): Tensor => bk.upload(data, shape);
const read = (t: Tensor): Float32Array => bk.readSync(t) as Float32Array;
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

test('attention kernel: kvHeads G < H equals attention over key/value heads repeated H/G times', () => {
  const b = 2,
    l = 5,
    H = 6,
    G = 2,
    dh = 4;
  const q = up(randomArray(b * l * H * dh, 1), [b, l, H * dh]);
  const kData = randomArray(b * l * G * dh, 2),
    vData = randomArray(b * l * G * dh, 3);
  // repeat_kv: head h reads kv head floor(h / (H/G))
  const rep = (src: Float32Array): Float32Array => {
    const out = new Float32Array(b * l * H * dh);
    for (let r = 0; r < b * l; r++)
      for (let h = 0; h < H; h++)
        for (let c = 0; c < dh; c++) out[(r * H + h) * dh + c] = src[(r * G + Math.floor(h / (H / G))) * dh + c];
    return out;
  };
  const grouped = bk.alloc([b, l, H * dh]);
  bk.attention!({
    out: grouped,
    q,
    k: up(kData, [b, l, G * dh]),
    v: up(vData, [b, l, G * dh]),
    heads: H,
    kvHeads: G,
    scale: 0.4,
  });
  const full = bk.alloc([b, l, H * dh]);
  bk.attention!({
    out: full,
    q,
    k: up(rep(kData), [b, l, H * dh]),
    v: up(rep(vData), [b, l, H * dh]),
    heads: H,
    scale: 0.4,
  });
  assert.ok(maxDiff(read(grouped), read(full)) === 0);
});

test('causal self-attention: the cached step equals the parallel form (GQA, partial rotary, biases, growth)', () => {
  const d = 12,
    H = 4,
    G = 2,
    dh = 6,
    l = 21; // past the first capacity of 16
  const w = {
    q: up(randomArray(H * dh * d, 10, -0.3, 0.3), [H * dh, d]),
    k: up(randomArray(G * dh * d, 11, -0.3, 0.3), [G * dh, d]),
    v: up(randomArray(G * dh * d, 12, -0.3, 0.3), [G * dh, d]),
    o: up(randomArray(d * H * dh, 13, -0.3, 0.3), [d, H * dh]),
    qBias: up(randomArray(H * dh, 14), [H * dh]),
    kBias: up(randomArray(G * dh, 15), [G * dh]),
    vBias: up(randomArray(G * dh, 16), [G * dh]),
    oBias: up(randomArray(d, 17), [d]),
  };
  for (const rotaryDim of [0, 4, 6]) {
    const att = new CausalSelfAttention(bk, w, {
      d,
      heads: H,
      kvHeads: G,
      headDim: dh,
      rotaryDim,
      ropeTheta: 500,
      scale: 0.37,
    });
    const x = up(randomArray(2 * l * d, 20), [2, l, d]);
    const whole = read(att.forward(x));
    const state = att.initState(2);
    const xs = read(x);
    const out = bk.alloc([2, d]);
    for (let t = 0; t < l; t++) {
      const xt = new Float32Array(2 * d);
      for (let r = 0; r < 2; r++) xt.set(xs.subarray((r * l + t) * d, (r * l + t + 1) * d), r * d);
      att.step(up(xt, [2, d]), out, state);
      const got = read(out);
      for (let r = 0; r < 2; r++) {
        const err = maxDiff(got.subarray(r * d, (r + 1) * d), whole.subarray((r * l + t) * d, (r * l + t + 1) * d));
        assert.ok(err < 1e-5, `rotary ${rotaryDim}, row ${r}, position ${t}: ${err}`);
      }
    }
    assert.ok(state.k.dim(1) >= l);
  }
});

/** A MoE over E tiny relu² experts (d 3, I 2), its router's logits given directly. */
function moe(E: number, o: Partial<MoeOptions>, bias: Float32Array | null = null): MixtureOfExperts {
  const d = 3,
    I = 2;
  const experts = Array.from(
    { length: E },
    (_, e) =>
      new Mlp(
        bk,
        {
          up: up(randomArray(I * d, 100 + e), [I, d]),
          gate: null,
          down: up(randomArray(d * I, 200 + e), [d, I]),
          upBias: null,
          gateBias: null,
          downBias: null,
        },
        'relu2',
      ),
  );
  const opts: MoeOptions = {
    topK: 2,
    routing: 'topk-softmax',
    normTopk: true,
    scaling: 1,
    nGroup: 1,
    topkGroup: 1,
    ...o,
  };
  return new MixtureOfExperts(
    bk,
    { router: up(randomArray(E * d, 300), [E, d]), correctionBias: bias && up(bias, [E]) },
    experts,
    null,
    opts,
    {
      router: 'gate.weight',
      correctionBias: 'gate.e_score_correction_bias',
      expert: (i) => `experts.${i}`,
      shared: '',
    },
  );
}

/** The router kernel on one row of logits: the dense weights (E). */
function route(logits: number[], o: Partial<MoeOptions>, bias: number[] | null = null): Float32Array {
  const E = logits.length;
  const w = bk.alloc([1, E]);
  const opts: MoeOptions = {
    topK: 2,
    routing: 'topk-softmax',
    normTopk: true,
    scaling: 1,
    nGroup: 1,
    topkGroup: 1,
    ...o,
  };
  bk.moeRoute!(w, up(Float32Array.from(logits), [1, E]), bias && up(Float32Array.from(bias), [E]), opts);
  return read(w);
}

test('moe routing: top-k then softmax (Granite), softmax then top-k (Jamba), sigmoid with bias and groups (Nemotron-H)', () => {
  const logits = [0.5, 2, -1, 1.5];
  const close = (a: ArrayLike<number>, b: number[]): void =>
    assert.ok(maxDiff(a, b) < 1e-6, `${Array.from(a)} vs ${b}`);
  // Granite: top-2 of the logits (1, 3), softmax over them
  const z = Math.exp(2) + Math.exp(1.5);
  close(route(logits, { routing: 'topk-softmax' }), [0, Math.exp(2) / z, 0, Math.exp(1.5) / z]);
  // Jamba: softmax over all four, top-2, not renormalised (and renormalised)
  const all = logits.map(Math.exp);
  const s = all.reduce((a, b) => a + b);
  close(route(logits, { routing: 'softmax-topk', normTopk: false }), [0, all[1] / s, 0, all[3] / s]);
  const two = all[1] + all[3];
  close(route(logits, { routing: 'softmax-topk', normTopk: true }), [0, all[1] / two, 0, all[3] / two]);
  // Nemotron-H: sigmoid; the bias moves the choice (expert 2 wins with +3) but not the weights
  const sig = logits.map((x) => 1 / (1 + Math.exp(-x)));
  const n = sig[2] + sig[1];
  close(route(logits, { routing: 'sigmoid', scaling: 1.7 }, [0, 0, 3, 0]), [
    0,
    (1.7 * sig[1]) / n,
    (1.7 * sig[2]) / n,
    0,
  ]);
  // two groups {0, 1} and {2, 3}, keep one: each ranked by the sum of its two best scores,
  // sig0 + sig1 > sig2 + sig3, so group 0 wins and both its experts are chosen
  const g = sig[0] + sig[1];
  close(route(logits, { routing: 'sigmoid', nGroup: 2, topkGroup: 1 }, [0, 0, 0, 0]), [sig[0] / g, sig[1] / g, 0, 0]);
});

test('moe: running only the chosen experts equals the dense weighted sum over all experts', () => {
  const E = 5,
    m = 7,
    d = 3;
  for (const routing of ['topk-softmax', 'softmax-topk', 'sigmoid'] as const) {
    const mx = moe(
      E,
      { routing, topK: 2, scaling: routing === 'sigmoid' ? 1.3 : 1 },
      Float32Array.from([0.1, -0.2, 0, 0.3, 0]),
    );
    const x = up(randomArray(m * d, 400), [m, d]);
    const got = read(mx.forward(x));
    const w = read(mx.route(x));
    const want = new Float32Array(m * d);
    const ys = mx.experts.map((e) => read(e.forward(x)));
    let chosen = 0;
    for (let r = 0; r < m; r++)
      for (let e = 0; e < E; e++) {
        if (w[r * E + e] !== 0) chosen++;
        for (let c = 0; c < d; c++) want[r * d + c] += w[r * E + e] * ys[e][r * d + c];
      }
    assert.equal(chosen, 2 * m);
    assert.ok(maxDiff(got, want) < 1e-6, `${routing}: ${maxDiff(got, want)}`);
  }
});
