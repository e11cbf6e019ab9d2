import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { memorySource } from '../../src/io/byte-source.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { memoryLength, traceModel } from '../../src/inspect/trace.js';
import { fixtureExpected, fixtureModel, PARITY, readArray, ROOT } from '../helpers/fixture-model.js';

/**
 * Tracing Mamba-2 (one Δ per head, one scalar A per head) against a direct computation from the
 * checkpoint: Δ_t,h = softplus(in_proj(norm(x))_dt + dt_bias) clamped to time_step_limit, recomputed
 * in f64 from the fixture's tensors; the state norm at the last token against the state the model
 * itself carries; the memory length against exp(A_h Σ Δ) per head. Two fixtures: one group, two groups.
 */
const FIXTURES = ['mamba2-g1-tied', 'mamba2-g2-untied'];

async function weights(name: string): Promise<Map<string, Float32Array>> {
  const src = await openSafetensors(
    memorySource(new Uint8Array(readFileSync(join(PARITY, name, 'model.safetensors'))), name),
  );
  const m = new Map<string, Float32Array>();
  for (const k of src.entries.keys()) m.set(k, (await readArray(src, k)) as Float32Array);
  await src.close();
  return m;
}

const limitOf = (v: unknown): number =>
  typeof v === 'number' ? v : (v as { __float__?: string })?.__float__ === 'Infinity' ? Infinity : Number(v);

for (const name of FIXTURES) {
  test(`trace (Mamba-2, ${name}): Δ per head recomputed from the weights; state norm; memory length`, async () => {
    const exp = await fixtureExpected(name);
    const ids = Array.from(exp.ids.subarray(0, exp.l));
    const bk = cpu();
    const lm = await fixtureModel(name, bk, 'f32');
    const tr = await traceModel(lm, ids);
    const cfg = JSON.parse(readFileSync(join(PARITY, name, 'config.json'), 'utf8'));
    const d = cfg.hidden_size as number;
    const H = cfg.num_heads as number;
    const P = cfg.head_dim as number;
    const g = cfg.n_groups as number;
    const n = cfg.state_size as number;
    const e = H * P;
    const [lo, hi] = (cfg.time_step_limit as unknown[]).map(limitOf);
    const l = ids.length;
    assert.equal(tr.kind, 'mamba2');
    assert.equal(tr.unit, 'head');
    assert.equal(tr.channels, H, 'one Δ column per head');
    assert.equal(tr.layers.length, cfg.num_hidden_layers);
    for (const L of tr.layers) {
      assert.equal(L.delta.length, l * H);
      assert.equal(L.memoryLength.length, l * H);
      assert.equal(L.stateNorm.length, l);
    }
    const w = await weights(name);
    const W = (s: string): Float32Array => w.get(`backbone.layers.0.${s}`) ?? assert.fail(`no ${s}`);
    const emb = w.get('backbone.embeddings.weight')!;
    const norm = W('norm.weight');
    const inProj = W('mixer.in_proj.weight');
    const inBias = w.get('backbone.layers.0.mixer.in_proj.bias'); // use_bias: true in the second fixture
    const dtBias = W('mixer.dt_bias');
    const ALog = W('mixer.A_log');
    const dtRow0 = 2 * e + 2 * g * n; // in_proj rows: z (e), xBC (e + 2gn), dt (h)
    let maxErr = 0;
    ids.forEach((id, t) => {
      const x = Array.from(emb.subarray(id * d, (id + 1) * d));
      const rms = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / d + cfg.layer_norm_epsilon);
      const xn = x.map((v, i) => v * rms * norm[i]);
      for (let h = 0; h < H; h++) {
        const raw =
          xn.reduce((s, v, i) => s + v * inProj[(dtRow0 + h) * d + i], 0) + (inBias?.[dtRow0 + h] ?? 0) + dtBias[h];
        const want = Math.min(Math.max(raw > 20 ? raw : Math.log1p(Math.exp(raw)), lo), hi);
        maxErr = Math.max(maxErr, Math.abs(tr.layers[0].delta[t * H + h] - want) / Math.max(1e-3, want));
      }
    });
    assert.ok(maxErr < 1e-4, `layer 0 Δ relative error ${maxErr}`);
    // the memory length per head: exp(A_h Σ Δ) with A_h = −exp(A_log_h)
    const A = Float32Array.from(ALog, (v) => -Math.exp(v));
    assert.deepEqual(Array.from(tr.layers[0].memoryLength), Array.from(memoryLength(tr.layers[0].delta, A, l, H, 1)));
    // the state norm at the last token is the norm of the state the model carries after the prompt
    const state = lm.initState(1);
    lm.forward(bk.upload(Int32Array.from(ids), [1, l], 'i32'), { state, lastOnly: true });
    for (let i = 0; i < tr.layers.length; i++) {
      const h = await state.layers[i].ssm.readFloat();
      const want = Math.sqrt(h.reduce((s, v) => s + v * v, 0));
      const got = tr.layers[i].stateNorm[l - 1];
      assert.ok(Math.abs(got - want) <= 1e-4 * want + 1e-6, `layer ${i}: trace ${got} vs state ${want}`);
    }
    state.dispose();
  });
}

test('mamba-ts inspect on a Mamba-2 checkpoint writes the per-head trace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'inspect-m2-'));
  const out = join(dir, 'trace.json');
  // the fixture (67 tokens) with the tiny byte-level tokenizer: digits and punctuation are ids 34..65
  const model = join(dir, 'model');
  mkdirSync(model);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(PARITY, 'mamba2-g1-tied', f), join(model, f));
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(ROOT, 'fixtures/tokenizer/tiny-bpe', f), join(model, f));
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'bin', 'mamba-ts.js'), 'inspect', '--model', model, '--prompt', '1,2;3:4=5?', '--out', out],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const t = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(t.kind, 'mamba2');
  assert.equal(t.unit, 'head');
  assert.equal(t.channels, 6);
  assert.equal(t.layers.length, 2);
  assert.equal(t.layers[0].delta[0].length, 6);
  assert.ok(t.layers[1].stateNorm.every((v: number) => v > 0 && Number.isFinite(v)));
  const svg = join(dir, 'trace.svg');
  const s = spawnSync(
    process.execPath,
    [join(ROOT, 'bin', 'mamba-ts.js'), 'inspect', '--model', model, '--prompt', '1,2', '--out', svg],
    { encoding: 'utf8' },
  );
  assert.equal(s.status, 0, s.stderr);
  assert.match(readFileSync(svg, 'utf8'), /and head \(down, 6\)/);
});
