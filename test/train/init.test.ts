import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { initMambaModel, initMambaParameters } from '../../src/train/init.js';
import { modelConfigFor } from '../../src/train/model-io.js';
import { DEFAULT_SETTINGS } from '../../src/train/settings.js';

/** The reference initialisation (REFERENCE.md §1) checked value by value and statistically. */
const cfg = modelConfigFor({ ...DEFAULT_SETTINGS.model, dModel: 64, nLayer: 3, dState: 6 }, 500, {
  eos: 0,
  bos: 0,
  pad: 0,
});

function stats(a: Float32Array): { mean: number; std: number; min: number; max: number } {
  let s = 0,
    s2 = 0,
    min = Infinity,
    max = -Infinity;
  for (const v of a) {
    s += v;
    s2 += v * v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const mean = s / a.length;
  return { mean, std: Math.sqrt(s2 / a.length - mean * mean), min, max };
}

test('init: A_log = log(1..n), D = 1, norms 1, dt bias = softplus^-1 of dt in [0.001, 0.1], conv and linear bounds, embeddings N(0, 0.02)', () => {
  const p = initMambaParameters(cfg, { seed: 3 });
  const { dInner: e, dState: n, dConv: k, dtRank: r, dModel: d, nLayer } = cfg;
  assert.equal(cfg.vocabSize, 504); // padded to a multiple of 8
  const A = p.get('backbone.layers.1.mixer.A_log')!.data;
  for (let c = 0; c < e; c++) for (let j = 0; j < n; j++) assert.equal(A[c * n + j], Math.fround(Math.log(j + 1)));
  assert.ok(p.get('backbone.layers.0.mixer.D')!.data.every((v) => v === 1));
  assert.ok(p.get('backbone.layers.2.norm.weight')!.data.every((v) => v === 1));
  assert.ok(p.get('backbone.norm_f.weight')!.data.every((v) => v === 1));
  const dt = Array.from(p.get('backbone.layers.0.mixer.dt_proj.bias')!.data, (b) => Math.log1p(Math.exp(b)));
  assert.ok(
    dt.every((v) => v >= 0.001 * 0.999 && v <= 0.1 * 1.001),
    'softplus(bias) in [dt_min, dt_max]',
  );
  // log-uniform: about half below the geometric mean 0.01
  const below = dt.filter((v) => v < 0.01).length / dt.length;
  assert.ok(below > 0.3 && below < 0.7, String(below));
  const check = (name: string, bound: number): void => {
    const s = stats(p.get(name)!.data);
    assert.ok(s.min >= -bound && s.max <= bound, `${name} within ±${bound}`);
    assert.ok(
      Math.abs(s.std - bound / Math.sqrt(3)) < 0.1 * bound,
      `${name}: std ${s.std}, uniform ±${bound} has ${bound / Math.sqrt(3)}`,
    );
  };
  check('backbone.layers.0.mixer.in_proj.weight', 1 / Math.sqrt(d));
  check('backbone.layers.0.mixer.x_proj.weight', 1 / Math.sqrt(e));
  check('backbone.layers.0.mixer.out_proj.weight', 1 / Math.sqrt(e) / Math.sqrt(nLayer));
  check('backbone.layers.0.mixer.dt_proj.weight', r ** -0.5);
  check('backbone.layers.0.mixer.conv1d.weight', 1 / Math.sqrt(k));
  assert.deepEqual(p.get('backbone.layers.0.mixer.conv1d.weight')!.shape, [e, 1, k]);
  const emb = stats(p.get('backbone.embeddings.weight')!.data);
  assert.ok(Math.abs(emb.mean) < 0.002 && Math.abs(emb.std - 0.02) < 0.001, JSON.stringify(emb));
  assert.equal(p.has('lm_head.weight'), false); // tied
});

test('init: the seed fixes every value; another seed changes them', async () => {
  const a = initMambaParameters(cfg, { seed: 11 }),
    b = initMambaParameters(cfg, { seed: 11 }),
    c = initMambaParameters(cfg, { seed: 12 });
  for (const [name, t] of a) assert.deepEqual(t.data, b.get(name)!.data, name);
  assert.notDeepEqual(a.get('backbone.embeddings.weight')!.data, c.get('backbone.embeddings.weight')!.data);
  const lm = await initMambaModel(cfg, { seed: 11 }, cpu());
  assert.deepEqual(
    cpu().readSync(lm.parameters().get('backbone.layers.0.mixer.in_proj.weight')!),
    a.get('backbone.layers.0.mixer.in_proj.weight')!.data,
  );
  assert.equal(
    lm.parameterCount(),
    [...a.values()].reduce((s, t) => s + t.data.length, 0),
  );
});
