import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { memorySource } from '../../src/io/byte-source.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { memoryLength, traceModel } from '../../src/inspect/trace.js';
import { fixtureExpected, fixtureModel, PARITY, readArray, ROOT } from '../helpers/fixture-model.js';

/**
 * The trace against an independent recomputation: layer 0's Δ rebuilt in plain f64 loops from the
 * checkpoint's tensors (embedding -> RMSNorm -> in_proj -> causal conv + SiLU -> x_proj -> dt_proj +
 * bias -> softplus), the state norm at the last token against the state the model itself carries,
 * and the memory length on a hand-worked example.
 */
const NAME = 'mamba1-tied';

async function weights(): Promise<Map<string, Float32Array>> {
  const src = await openSafetensors(
    memorySource(new Uint8Array(readFileSync(join(PARITY, NAME, 'model.safetensors'))), NAME),
  );
  const m = new Map<string, Float32Array>();
  for (const k of src.entries.keys()) m.set(k, (await readArray(src, k)) as Float32Array);
  await src.close();
  return m;
}

test("trace: layer 0's Δ equals softplus(dt_proj(x_proj(silu(conv(in_proj(norm(x))))))) recomputed", async () => {
  const exp = await fixtureExpected(NAME);
  const ids = Array.from(exp.ids.subarray(0, exp.l));
  const lm = await fixtureModel(NAME, cpu(), 'f32');
  const tr = await traceModel(lm, ids);
  const cfg = JSON.parse(readFileSync(join(PARITY, NAME, 'config.json'), 'utf8'));
  const d = cfg.hidden_size as number;
  const e = cfg.intermediate_size as number;
  const n = cfg.state_size as number;
  const r = cfg.time_step_rank as number;
  const k = cfg.conv_kernel as number;
  const l = ids.length;
  assert.equal(tr.layers.length, cfg.num_hidden_layers);
  assert.equal(tr.channels, e);
  assert.equal(tr.dState, n);
  for (const L of tr.layers) {
    assert.equal(L.delta.length, l * e);
    assert.equal(L.memoryLength.length, l * e);
    assert.equal(L.stateNorm.length, l);
    assert.equal(L.bNorm.length, l);
    assert.equal(L.cNorm.length, l);
  }
  const w = await weights();
  const W = (s: string): Float32Array => w.get(`backbone.layers.0.${s}`) ?? assert.fail(`no ${s}`);
  const emb = w.get('backbone.embeddings.weight')!;
  const norm = W('norm.weight');
  const inProj = W('mixer.in_proj.weight');
  const convW = W('mixer.conv1d.weight');
  const convB = W('mixer.conv1d.bias');
  const xProj = W('mixer.x_proj.weight');
  const dtW = W('mixer.dt_proj.weight');
  const dtB = W('mixer.dt_proj.bias');
  const u: number[][] = ids.map((id) => {
    const x = Array.from(emb.subarray(id * d, (id + 1) * d));
    const rms = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / d + cfg.layer_norm_epsilon);
    const xn = x.map((v, i) => v * rms * norm[i]);
    return Array.from({ length: e }, (_, c) => xn.reduce((s, v, i) => s + v * inProj[c * d + i], 0));
  });
  let maxErr = 0;
  for (let t = 0; t < l; t++) {
    const uc = Array.from({ length: e }, (_, c) => {
      let s = convB[c];
      for (let j = 0; j < k; j++) {
        const tt = t - k + 1 + j;
        if (tt >= 0) s += convW[c * k + j] * u[tt][c];
      }
      return s / (1 + Math.exp(-s));
    });
    const low = Array.from({ length: r }, (_, q) => uc.reduce((s, v, c) => s + v * xProj[q * e + c], 0));
    for (let c = 0; c < e; c++) {
      const pre = dtB[c] + low.reduce((s, v, q) => s + v * dtW[c * r + q], 0);
      const want = pre > 20 ? pre : Math.log1p(Math.exp(pre));
      maxErr = Math.max(maxErr, Math.abs(tr.layers[0].delta[t * e + c] - want) / Math.max(1e-3, Math.abs(want)));
    }
  }
  assert.ok(maxErr < 1e-4, `layer 0 Δ relative error ${maxErr}`);
  assert.ok(
    tr.layers.every((L) => L.delta.every((v) => v > 0 && Number.isFinite(v))),
    'Δ is positive and finite',
  );
});

test("trace: the state norm at the last token is the norm of the model's own state after the prompt", async () => {
  const exp = await fixtureExpected(NAME);
  const ids = Array.from(exp.ids.subarray(0, exp.l));
  const bk = cpu();
  const lm = await fixtureModel(NAME, bk, 'f32');
  const tr = await traceModel(lm, ids);
  const state = lm.initState(1);
  lm.forward(bk.upload(Int32Array.from(ids), [1, ids.length], 'i32'), { state, lastOnly: true });
  for (let i = 0; i < tr.layers.length; i++) {
    const h = await state.layers[i].ssm.readFloat();
    const norm = Math.sqrt(h.reduce((s, v) => s + v * v, 0));
    const got = tr.layers[i].stateNorm[ids.length - 1];
    assert.ok(Math.abs(got - norm) <= 1e-4 * norm + 1e-6, `layer ${i}: trace ${got} vs state ${norm}`);
  }
});

test('memory length: tokens whose input still weighs >= 1/e in the slowest state', () => {
  // one channel, A = [-2, -0.5] -> slowest -0.5, reach Σ Δ <= 2
  const A = Float32Array.from([-2, -0.5]);
  const delta = Float32Array.from([0.1, 0.1, 3, 0.5, 0.5, 0.5, 0.5, 0.5]);
  const m = memoryLength(delta, A, delta.length, 1, 2);
  // t=1: both tokens within reach; t=2: the large Δ_2 = 3 resets: token 1 is behind Σ = 3 -> lost;
  // t=3: token 2 behind 0.5 -> kept, token 1 behind 3.5 -> lost; t=7: tokens 3..7 (Σ Δ_4..7 = 2.0)
  assert.deepEqual(Array.from(m), [1, 2, 1, 2, 3, 4, 5, 5]);
});

test('mamba-ts inspect (the shipped model) writes trace.json and an SVG heatmap', () => {
  const dir = mkdtempSync(join(tmpdir(), 'inspect-'));
  const bin = join(ROOT, 'bin', 'mamba-ts.js');
  const run = (...a: string[]) => spawnSync(process.execPath, [bin, 'inspect', ...a], { encoding: 'utf8' });
  const json = join(dir, 'trace.json');
  let r = run('--prompt', 'The jury said', '--out', json);
  assert.equal(r.status, 0, r.stderr);
  const t = JSON.parse(readFileSync(json, 'utf8'));
  assert.equal(t.format, 'mamba-ts-trace/1');
  assert.equal(t.layers.length, 6);
  assert.equal(t.layers[0].delta.length, t.length);
  assert.equal(t.layers[0].delta[0].length, t.channels);
  assert.equal(t.pieces.join(''), 'The jury said');
  const svg = join(dir, 'trace.svg');
  r = run('--prompt', 'The jury said', '--out', svg, '--layer', '2');
  assert.equal(r.status, 0, r.stderr);
  assert.ok(existsSync(svg));
  const s = readFileSync(svg, 'utf8');
  assert.match(s, /^<svg/);
  assert.ok((s.match(/<rect /g) ?? []).length > t.channels * t.length, 'one cell per token and channel');
  r = run('--prompt', 'x', '--out', join(dir, 'trace.txt'));
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--out must name a \.json or \.svg file/);
});
