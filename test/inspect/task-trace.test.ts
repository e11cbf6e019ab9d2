import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { traceModel } from '../../src/inspect/trace.js';
import { Rng } from '../../src/mixers/init.js';
import { selectiveCopying } from '../../src/tasks/generators.js';
import { buildTaskModel, DEFAULT_TASK_MODEL, type MixerName, type TaskLanguageModel } from '../../src/tasks/models.js';
import { loadTaskModel } from '../../src/tasks/task-model.js';
import { evaluate } from '../../src/tasks/train.js';
import { ROOT } from '../helpers/fixture-model.js';

/**
 * Tracing the task models' S6 and S4D layers (the web app's Selection view): Δ against a direct f64
 * recomputation from the weights, the state norm against the state the model itself carries, and the
 * shipped models (models/tasks/): their recorded accuracy re-measured, the S6 model's Δ higher on the
 * data tokens than on the noise, the S4D model's Δ one constant per channel.
 */
const bk = cpu();

function tinyTaskModel(mixer: MixerName): TaskLanguageModel {
  return buildTaskModel(
    { ...DEFAULT_TASK_MODEL, mixer, vocabSize: 8, dModel: 8, nLayer: 2, dState: 4, maxLength: 16 },
    bk,
    3,
  );
}

async function params(lm: TaskLanguageModel): Promise<Map<string, Float32Array>> {
  const m = new Map<string, Float32Array>();
  for (const [k, t] of lm.parameters()) m.set(k, await t.readFloat());
  return m;
}

/** Layer 0's core input u = in_proj(rmsnorm(embedding)) per token, in f64. */
function layer0Input(w: Map<string, Float32Array>, ids: number[], d: number, e: number, eps: number): number[][] {
  const emb = w.get('backbone.embeddings.weight')!;
  const norm = w.get('backbone.layers.0.norm.weight')!;
  const inProj = w.get('backbone.layers.0.mixer.in_proj.weight')!;
  return ids.map((id) => {
    const x = Array.from(emb.subarray(id * d, (id + 1) * d));
    const rms = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / d + eps);
    const xn = x.map((v, i) => v * rms * norm[i]);
    return Array.from({ length: e }, (_, c) => xn.reduce((s, v, i) => s + v * inProj[c * d + i], 0));
  });
}

async function carriedStateNorms(lm: TaskLanguageModel, ids: number[]): Promise<number[]> {
  const state = lm.initState(1);
  lm.forward(bk.upload(Int32Array.from(ids), [1, ids.length], 'i32'), { state, lastOnly: true });
  const out: number[] = [];
  for (const layer of state.layers) {
    const h = await layer.ssm.readFloat();
    out.push(Math.sqrt(h.reduce((s, v) => s + v * v, 0)));
  }
  state.dispose();
  return out;
}

const IDS = [1, 5, 0, 0, 3, 0, 7, 2, 0, 0, 6, 4];

test("trace (S6 task model): layer 0's Δ = softplus(dt_proj(x_proj(in_proj(norm(x)))) + b), the state norm", async () => {
  const lm = tinyTaskModel('s6');
  const tr = await traceModel(lm, IDS);
  assert.equal(tr.kind, 's6');
  assert.equal(tr.unit, 'channel');
  const d = 8,
    e = 16,
    n = 4,
    r = 1;
  assert.equal(tr.channels, e);
  const w = await params(lm);
  const u = layer0Input(w, IDS, d, e, lm.config.normEps);
  const xProj = w.get('backbone.layers.0.mixer.core.x_proj.weight')!;
  const dtW = w.get('backbone.layers.0.mixer.core.dt_proj.weight')!;
  const dtB = w.get('backbone.layers.0.mixer.core.dt_proj.bias')!;
  let maxErr = 0;
  IDS.forEach((_, t) => {
    const low = Array.from({ length: r }, (_, q) => u[t].reduce((s, v, c) => s + v * xProj[q * e + c], 0));
    for (let c = 0; c < e; c++) {
      const pre = dtB[c] + low.reduce((s, v, q) => s + v * dtW[c * r + q], 0);
      const want = pre > 20 ? pre : Math.log1p(Math.exp(pre));
      maxErr = Math.max(maxErr, Math.abs(tr.layers[0].delta[t * e + c] - want) / Math.max(1e-3, want));
    }
  });
  assert.ok(maxErr < 1e-4, `layer 0 Δ relative error ${maxErr}`);
  assert.equal(tr.dState, n);
  const norms = await carriedStateNorms(lm, IDS);
  tr.layers.forEach((L, i) => {
    const got = L.stateNorm[IDS.length - 1];
    assert.ok(Math.abs(got - norms[i]) <= 1e-4 * norms[i] + 1e-6, `layer ${i}: trace ${got} vs state ${norms[i]}`);
  });
});

test('trace (S4D task model): Δ = exp(log_dt) for every token, the state norm is the carried state', async () => {
  const lm = tinyTaskModel('s4d');
  const tr = await traceModel(lm, IDS);
  assert.equal(tr.kind, 's4d');
  const e = tr.channels;
  const w = await params(lm);
  for (const L of tr.layers) {
    const logDt = w.get(`backbone.layers.${L.layer}.mixer.core.log_dt`)!;
    for (let t = 0; t < IDS.length; t++)
      for (let c = 0; c < e; c++) {
        const want = Math.exp(logDt[c]);
        assert.ok(Math.abs(L.delta[t * e + c] - want) <= 1e-6 * want, `layer ${L.layer} t ${t} c ${c}`);
      }
  }
  // the recurrent mode (diagonalSsmScan) carries the same complex state the tracer reruns
  const norms = await carriedStateNorms(lm, IDS);
  tr.layers.forEach((L, i) => {
    const got = L.stateNorm[IDS.length - 1];
    assert.ok(Math.abs(got - norms[i]) <= 1e-4 * norms[i] + 1e-6, `layer ${i}: trace ${got} vs state ${norms[i]}`);
  });
});

test('trace: a layer kind it cannot read is refused with a message naming it', async () => {
  const lm = tinyTaskModel('attention');
  await assert.rejects(traceModel(lm, [1, 2, 3]), (err: Error) =>
    /layer 0 .*attention.*Mamba-1, Mamba-2, S6/.test(err.message),
  );
});

const SHIPPED = join(ROOT, 'models/tasks');

async function shipped(key: 's6' | 's4d') {
  return loadTaskModel(new Uint8Array(readFileSync(join(SHIPPED, `${key}.safetensors`))), bk, `${key}.safetensors`);
}

test('shipped task models: the recorded held-out accuracy is what the files score', async () => {
  for (const key of ['s6', 's4d'] as const) {
    const { model, meta } = await shipped(key);
    assert.equal(meta.task, 'selective-copying');
    assert.equal(meta.model.mixer, key);
    const a = await evaluate(model, meta.task, meta.settings, meta.accuracy.examples, meta.seed, 16);
    assert.equal(a.token, meta.accuracy.token, `${key}: re-measured ${a.token}, recorded ${meta.accuracy.token}`);
  }
  const s6 = (await shipped('s6')).meta.accuracy.token;
  const s4d = (await shipped('s4d')).meta.accuracy.token;
  assert.ok(s6 > s4d, `S6 ${s6} beats S4D ${s4d} on selective copying`);
});

test("shipped task models: S6's Δ is higher on data tokens than on noise; S4D's is constant per channel", async () => {
  const s6 = await shipped('s6');
  const s4d = await shipped('s4d');
  const s = s6.meta.settings;
  for (let seed = 1; seed <= 4; seed++) {
    const ex = selectiveCopying(new Rng(seed), 1, s);
    const ids = Array.from(ex.inputs);
    const tr = await traceModel(s6.model, ids);
    const e = tr.channels;
    // layer 0, where the tokens are first written into a state: the typical (geometric mean over
    // channels and tokens) Δ on data tokens against noise, and the channels that open on data tokens
    const D = tr.layers[0].delta;
    const isData = (t: number) => ids[t] !== 0 && ids[t] !== s.vocabSize - 1;
    const geo = (keep: (t: number) => boolean) => {
      let sum = 0,
        n = 0;
      for (let t = 0; t < tr.length; t++)
        if (keep(t))
          for (let c = 0; c < e; c++) {
            sum += Math.log(D[t * e + c]);
            n++;
          }
      return Math.exp(sum / n);
    };
    const data = geo(isData),
      noise = geo((t) => ids[t] === 0);
    assert.ok(data > 1.5 * noise, `seed ${seed}: typical Δ on data ${data} vs noise ${noise}`);
    let opening = 0;
    for (let c = 0; c < e; c++) {
      let sd = 0,
        sn = 0;
      for (let t = 0; t < tr.length; t++) {
        if (isData(t)) sd += D[t * e + c] / s.count;
        else if (ids[t] === 0) sn += D[t * e + c] / (tr.length - 2 * s.count);
      }
      if (sd > 2 * sn) opening++;
    }
    assert.ok(opening >= e / 4, `seed ${seed}: ${opening} of ${e} channels open more than 2× wider on data tokens`);
    const lt = await traceModel(s4d.model, ids);
    for (const L of lt.layers)
      for (let c = 0; c < lt.channels; c++)
        for (let t = 1; t < lt.length; t++)
          assert.equal(L.delta[t * lt.channels + c], L.delta[c], `S4D layer ${L.layer} channel ${c} at ${t}`);
  }
});
