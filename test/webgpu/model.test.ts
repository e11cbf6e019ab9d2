import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import type { Backend } from '../../src/backend/backend.js';
import { deviceTokens } from '../../src/generate/device-loop.js';
import { generateTokens, type GenerateOptions } from '../../src/generate/generate.js';
import { GREEDY, type SamplingParams } from '../../src/backend/sampling.js';
import type { LanguageModel } from '../../src/models/lm.js';
import type { WeightDType } from '../../src/models/weights.js';
import { assertClose } from '../helpers/compare.js';
import { fixtureExpected, fixtureModel } from '../helpers/fixture-model.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

after(disposeGpu);

async function forwardLogits(model: LanguageModel, ids: Int32Array, b: number, l: number): Promise<Float32Array> {
  const t = model.backend.upload(ids, [b, l], 'i32');
  return model.forward(t).readFloat();
}

/** Step logits at every position (b, l, V), from the recurrent form. */
async function stepLogits(model: LanguageModel, ids: Int32Array, b: number, l: number): Promise<Float32Array> {
  const V = model.vocabSize;
  const out = new Float32Array(b * l * V);
  const state = model.initState(b);
  for (let t = 0; t < l; t++) {
    const row = Array.from({ length: b }, (_, i) => ids[i * l + t]);
    const lg = await model.stepIds(row, state).readFloat();
    for (let i = 0; i < b; i++) out.set(lg.subarray(i * V, (i + 1) * V), (i * l + t) * V);
  }
  state.dispose();
  return out;
}

for (const [name, wdtype] of [
  ['mamba1-tied', 'f32'],
  ['mamba1-f16', 'auto'],
  ['mamba1-f16', 'bf16'],
] as [string, WeightDType][]) {
  test(`${name} (${wdtype} weights): WebGPU logits, parallel and recurrent, match the CPU backend and PyTorch within 1e-4`, async (t) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const exp = await fixtureExpected(name);
    const gm = await fixtureModel(name, g, wdtype);
    const cm = await fixtureModel(name, cpu(), wdtype);
    const { b, l } = exp;
    const gpar = await forwardLogits(gm, exp.ids, b, l);
    const cpar = await forwardLogits(cm, exp.ids, b, l);
    assertClose(gpar, cpar, `${name}: parallel logits vs CPU`, 0, 1e-4);
    // bf16 weights rounded from f16 ones change the model: PyTorch's logits only bind the exact dtypes
    if (wdtype !== 'bf16') assertClose(gpar, exp.logits, `${name}: parallel logits vs PyTorch`, 0, 1e-4);
    const gstep = await stepLogits(gm, exp.ids, b, l);
    assertClose(gstep, cpar, `${name}: recurrent (fused step) logits vs CPU parallel`, 0, 1e-4);
    assertClose(gstep, gpar, `${name}: recurrent vs parallel on WebGPU`, 0, 1e-4);
  });
}

test('mamba1-tied: the fused Mamba step equals the composition of kernels on the same backend', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const exp = await fixtureExpected('mamba1-tied');
  const { b, l } = exp;
  const model = await fixtureModel('mamba1-tied', g, 'f32');
  const fused = await stepLogits(model, exp.ids, b, l);
  // the same backend with the optional method hidden: MambaMixer.step runs its reference composition
  const plain = Object.create(g, { mambaStep: { value: undefined } }) as Backend;
  const model2 = await fixtureModel('mamba1-tied', plain, 'f32');
  const composed = await stepLogits(model2, exp.ids, b, l);
  assertClose(fused, composed, 'fused vs composed step', 0, 2e-5);
});

async function generateOnDevice(
  model: LanguageModel,
  ids: Int32Array,
  b: number,
  l: number,
  n: number,
  p: SamplingParams,
  lookahead: number,
): Promise<number[][]> {
  const state = model.initState(b);
  const logits = model.forward(model.backend.upload(ids, [b, l], 'i32'), { state, lastOnly: true });
  const rows: number[][] = Array.from({ length: b }, (_, i) => Array.from(ids.subarray(i * l, (i + 1) * l)));
  for await (const got of deviceTokens(model, state, logits, {
    maxNewTokens: n,
    sampling: p,
    lookahead,
    prompts: rows.map((r) => [...r]),
  })) {
    got.forEach((id, i) => rows[i].push(id));
  }
  assert.equal(state.position, l + n - 1, 'the state consumed every token but the last');
  state.dispose();
  return rows;
}

test('deviceTokens: greedy generation on WebGPU reproduces transformers token for token', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const exp = await fixtureExpected('mamba1-tied');
  const { b, l, total } = exp;
  const model = await fixtureModel('mamba1-tied', g, 'f32');
  for (const lookahead of [0, 1, 3]) {
    const rows = await generateOnDevice(model, exp.ids, b, l, total - l, GREEDY, lookahead);
    assert.deepEqual(rows.flat(), Array.from(exp.greedy), `lookahead ${lookahead}`);
  }
});

test('deviceTokens: sampled generation on WebGPU equals the same loop on the CPU backend (penalty, top-k/p, min-p)', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const exp = await fixtureExpected('mamba1-tied');
  const { b, l } = exp;
  const gm = await fixtureModel('mamba1-tied', g, 'f32');
  const cm = await fixtureModel('mamba1-tied', cpu(), 'f32');
  const p: SamplingParams = { temperature: 0.9, topK: 20, topP: 0.9, minP: 0.02, repetitionPenalty: 1.2, seed: 1234 };
  const a = await generateOnDevice(gm, exp.ids, b, l, 12, p, 2);
  const c = await generateOnDevice(cm, exp.ids, b, l, 12, p, 2);
  assert.deepEqual(a, c);
});

test('deviceTokens: stops once every row has produced an EOS id', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const exp = await fixtureExpected('mamba1-tied');
  const { b, l } = exp;
  const model = await fixtureModel('mamba1-tied', g, 'f32');
  // every greedy continuation's first new token, used as the EOS set
  const firsts = Array.from({ length: b }, (_, i) => exp.greedy[i * exp.total + l]);
  const state = model.initState(b);
  const logits = model.forward(g.upload(exp.ids, [b, l], 'i32'), { state, lastOnly: true });
  let steps = 0;
  for await (const got of deviceTokens(model, state, logits, { maxNewTokens: 10, sampling: GREEDY, eos: firsts })) {
    assert.deepEqual(Array.from(got), firsts);
    steps++;
  }
  assert.equal(steps, 1);
});

test("generateTokens on WebGPU samples on the device and gives the host sampler's tokens (batch of unequal prompts, penalty, EOS)", async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const exp = await fixtureExpected('mamba1-tied');
  const { l } = exp;
  const gm = await fixtureModel('mamba1-tied', g, 'f32');
  const cm = await fixtureModel('mamba1-tied', cpu(), 'f32');
  // two prompts of different lengths (prefilled one by one), the host loop's semantics on both backends
  const prompts = [Array.from(exp.ids.subarray(0, l)), Array.from(exp.ids.subarray(0, Math.max(1, l - 3)))];
  const run = async (m: LanguageModel, o: GenerateOptions): Promise<string[]> => {
    const ev: string[] = [];
    for await (const e of generateTokens(m, prompts, o)) ev.push(`${e.row}:${e.token}:${e.finish ?? ''}`);
    return ev;
  };
  const sampled: GenerateOptions = {
    maxNewTokens: 10,
    temperature: 0.9,
    topK: 20,
    topP: 0.9,
    minP: 0.02,
    repetitionPenalty: 1.2,
    seed: 7,
  };
  const cpuEvents = await run(cm, sampled);
  assert.deepEqual(await run(gm, sampled), cpuEvents, 'sampled');
  // a row that reaches EOS stops while the other goes on
  const firstOfRow0 = Number(cpuEvents[0].split(':')[1]);
  const withEos: GenerateOptions = { ...sampled, eosTokenIds: [firstOfRow0] };
  const a = await run(gm, withEos);
  assert.deepEqual(a, await run(cm, withEos), 'with EOS');
  assert.equal(a[0], `0:${firstOfRow0}:eos`);
});
