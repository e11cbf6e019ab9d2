import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMambaError } from '../../src/errors.js';
import { memorySource } from '../../src/io/byte-source.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { encodeSafetensors } from '../../src/io/safetensors-writer.js';
import { hybridStateBytes, parseHybridConfig } from '../../src/models/config-hybrid.js';
import { loadAnyLanguageModel, loadHybridModel, openWeights } from '../../src/models/node/load-checkpoint.js';
import { scaledSource } from '../../src/models/scaled-source.js';
import { decodeState, encodeState } from '../../src/models/state-io.js';
import { loadModel } from '../../src/node/load.js';
import { f32ToHalf, halfToF32 } from '../../src/tensor/dtype.js';
import { familyParity } from '../helpers/family.js';
import { FAMILY, maxAbsDiff, readExpected } from '../helpers/fixtures.js';
import { checkPiecesMatchWhole, logitsOf } from '../helpers/parity.js';

/**
 * Falcon-H1 (falcon_h1) against transformers 5.17 (fixtures/family/falcon-h1, -nonorm): attention and
 * Mamba-2 in parallel in every layer, every muP multiplier away from 1, mamba_d_ssm 48 apart from
 * expand · hidden 80; with the grouped gated norm (n_groups 2, gate before norm) and without it
 * (y · silu(z), n_groups 1, tied); with every bias on (in_proj, out_proj, q/k/v/o, MLP: a multiplier on a
 * projection's input leaves its bias alone, one on its output scales it), mamba_d_ssm null, the norm before
 * the gate and 4 groups (falcon-h1-biases). Logits within 1e-4 on both prompts, greedy identical, the cached step
 * equal to the parallel form; the hybrid state (SSM states + KV caches) as a value; the config's
 * unsupported options refused by name.
 */
familyParity('falcon-h1');
familyParity('falcon-h1-nonorm');
familyParity('falcon-h1-biases');

const NAME = 'falcon-h1';

const raw = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(FAMILY, name, 'config.json'), 'utf8')) as Record<string, unknown>;

test('falcon_h1 config: one parallel mamba2+attention layer and a SwiGLU MLP per layer, mamba_d_ssm, the multipliers', () => {
  const c = parseHybridConfig(raw('falcon-h1'));
  assert.equal(c.arch, 'falcon_h1');
  assert.deepEqual(
    c.layers,
    Array.from({ length: 3 }, () => ({ mixer: 'mamba2+attention', ffn: 'mlp' })),
  );
  assert.deepEqual(
    [c.mamba!.dInner, c.mamba!.nHeads, c.mamba!.headDim, c.mamba!.nGroups, c.mamba!.normGroupSize],
    [48, 6, 8, 2, 24],
  );
  assert.deepEqual([c.mamba!.rmsNorm, c.mamba!.normBeforeGate, c.mamba!.timeStepLimit], [true, false, [0, Infinity]]);
  assert.deepEqual(
    [c.attention.heads, c.attention.kvHeads, c.attention.headDim, c.attention.rotaryDim],
    [4, 2, 12, 12],
  );
  assert.equal(c.attention.ropeTheta, 1000);
  assert.equal(c.attention.scale, 1 / Math.sqrt(12));
  assert.deepEqual(c.muP, {
    ssmIn: 1.25,
    ssmOut: 0.65,
    ssm: [0.9, 1.2, 0.5, 1.6, 0.75],
    attentionIn: 1.4,
    attentionOut: 0.7,
    key: 0.6,
    mlpGate: 0.8,
    mlpDown: 1.3,
    lmHead: 0.45,
  });
  assert.equal(c.embeddingMultiplier, 3.5);
  assert.equal(c.logitsScaling, 1 / 0.45);
  const n = parseHybridConfig(raw('falcon-h1-nonorm'));
  assert.deepEqual([n.mamba!.rmsNorm, n.tieEmbeddings, n.mamba!.nGroups], [false, true, 1]);
  const b = parseHybridConfig(raw('falcon-h1-biases'));
  assert.deepEqual(
    [b.mamba!.dInner, b.mamba!.headDim, b.mamba!.nGroups, b.mamba!.normGroupSize, b.mamba!.normBeforeGate],
    [80, 10, 4, 20, true],
  );
  assert.deepEqual(
    [b.mamba!.useBias, b.mamba!.outBias, b.attention.bias, b.attention.outBias, b.mlp?.bias],
    [true, true, true, true, true],
  );
  // FalconH1Config's defaults: mamba_d_ssm null -> expand · hidden, head_dim "auto", multipliers 1
  const d = parseHybridConfig({
    model_type: 'falcon_h1',
    hidden_size: 64,
    mamba_d_ssm: null,
    mamba_n_heads: 8,
    num_attention_heads: 4,
  });
  assert.deepEqual(
    [d.mamba!.dInner, d.mamba!.headDim, d.attention.headDim, d.muP?.ssm, d.muP?.mlpGate],
    [128, 16, 16, [1, 1, 1, 1, 1], 1],
  );
  assert.equal(d.mamba!.rmsNorm, false);
});

test("falcon_h1 config in the Hub's older vocabulary (rope_theta at the top level, keys transformers ignores)", () => {
  // the shape of Falcon-H1-0.5B's config.json (written by transformers 4.5x), sizes as published
  const c = parseHybridConfig({
    architectures: ['FalconH1ForCausalLM'],
    model_type: 'falcon_h1',
    attention_bias: false,
    attention_in_multiplier: 1.0,
    attention_out_multiplier: 0.9375,
    attn_layer_indices: null,
    embedding_multiplier: 5.656854249492381,
    head_dim: 64,
    hidden_act: 'silu',
    hidden_size: 1024,
    intermediate_size: 2048,
    key_multiplier: 0.390625,
    lm_head_multiplier: 0.0390625,
    mamba_chunk_size: 128,
    mamba_conv_bias: true,
    mamba_d_conv: 4,
    mamba_d_head: 64,
    mamba_d_ssm: 1536,
    mamba_d_state: 128,
    mamba_expand: 2,
    mamba_n_groups: 1,
    mamba_n_heads: 24,
    mamba_norm_before_gate: false,
    mamba_proj_bias: false,
    mamba_rms_norm: false,
    mamba_use_mlp: true,
    mlp_bias: false,
    mlp_expansion_factor: 8,
    mlp_multipliers: [0.8838834764831844, 0.5859375],
    num_attention_heads: 8,
    num_hidden_layers: 36,
    num_key_value_heads: 2,
    projectors_bias: false,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    rope_theta: 100000000000.0,
    ssm_in_multiplier: 1.25,
    ssm_multipliers: [0.3535533905932738, 0.25, 0.3535533905932738, 0.5, 0.3535533905932738],
    ssm_out_multiplier: 0.23570226039551587,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    vocab_size: 32784,
  });
  assert.deepEqual(
    [c.nLayer, c.dModel, c.mamba!.dInner, c.mamba!.nHeads, c.mamba!.headDim, c.mamba!.dState],
    [36, 1024, 1536, 24, 64, 128],
  );
  assert.deepEqual(
    [c.attention.heads, c.attention.kvHeads, c.attention.headDim, c.attention.ropeTheta],
    [8, 2, 64, 1e11],
  );
  assert.equal(c.mamba!.rmsNorm, false);
  assert.equal(c.muP?.ssmOut, 0.23570226039551587);
  // what info reports: per sequence, 36 x (conv (1536 + 2·128, 4) + ssm (24, 64, 128) + a counter) f32
  assert.deepEqual(hybridStateBytes(c), {
    constantBytes: 36 * (4 * ((1536 + 256) * 4 + 24 * 64 * 128) + 4),
    bytesPerToken: 36 * 4 * 2 * 2 * 64,
  });
});

test('falcon_h1 config: options not implemented are refused by name, never a different model', () => {
  const base = raw('falcon-h1');
  const refused: [Record<string, unknown>, 'UNSUPPORTED' | 'CORRUPT_FILE', RegExp][] = [
    [{ rope_parameters: { rope_type: 'yarn', rope_theta: 1e4 } }, 'UNSUPPORTED', /rope_type "yarn".*"default" RoPE/],
    [
      { rope_parameters: { rope_type: 'default', rope_theta: 1e4, partial_rotary_factor: 0.5 } },
      'UNSUPPORTED',
      /partial_rotary_factor 0.5/,
    ],
    [{ hidden_act: 'gelu' }, 'UNSUPPORTED', /hidden_act "gelu".*"silu"/],
    [{ layers_block_type: ['hybrid', 'attention', 'hybrid'] }, 'UNSUPPORTED', /layers_block_type\[1\] "attention"/],
    [{ ssm_multipliers: [1, 2, 3] }, 'CORRUPT_FILE', /ssm_multipliers" must be a list of 5 finite numbers/],
    [{ mlp_multipliers: [1, 'x'] }, 'CORRUPT_FILE', /mlp_multipliers" must be a list of 2/],
    [{ mamba_d_head: 7 }, 'CORRUPT_FILE', /mamba_n_heads 6 x mamba_d_head 7 must equal the Mamba width 48/],
    [{ lm_head_multiplier: -1 }, 'UNSUPPORTED', /lm_head_multiplier -1/],
    [{ mamba_n_groups: 4 }, 'CORRUPT_FILE', /6 Mamba heads cannot be split into 4 groups/],
  ];
  for (const [patch, code, message] of refused)
    assert.throws(
      () => parseHybridConfig({ ...base, ...patch }),
      (e: unknown) => isMambaError(e, code) && message.test(e.message),
      JSON.stringify(patch),
    );
});

test('falcon-h1 loads through loadAnyLanguageModel; parameters() names every checkpoint tensor by its own name', async () => {
  for (const name of ['falcon-h1', 'falcon-h1-nonorm', 'falcon-h1-biases']) {
    const model = await loadAnyLanguageModel(join(FAMILY, name));
    assert.equal(model.config.arch, 'falcon_h1');
    const src = await openWeights(join(FAMILY, name));
    const stored = [...src.entries.keys()].filter((k) => !(k === 'lm_head.weight' && model.config.tieEmbeddings));
    await src.close();
    assert.deepEqual([...model.parameters().keys()].sort(), stored.sort());
    assert.equal(model.blocks[0].mixer.kind, 'mamba2+attention');
  }
});

test('falcon-h1: mamba_rms_norm false with a norm weight in the checkpoint is a clear error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'falcon-h1-'));
  try {
    await cp(join(FAMILY, 'falcon-h1'), dir, { recursive: true });
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, mamba_rms_norm: false }));
    await assert.rejects(
      loadHybridModel(dir),
      (e: unknown) => isMambaError(e, 'CONFIG_MISMATCH') && /mamba_rms_norm false.*mamba\.norm\.weight/.test(e.message),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('scaledSource: a factor per row or one for all, read as F32 or (keepHalf) in the stored 16-bit dtype', async () => {
  const w = Float32Array.from({ length: 6 }, (_, i) => 0.25 * (i + 1)); // (3, 2)
  const bits = f32ToHalf(w, 'bf16');
  const file = encodeSafetensors([
    { name: 'a', dtype: 'F32', shape: [3, 2], data: w },
    { name: 'b', dtype: 'BF16', shape: [3, 2], data: bits },
  ]);
  const src = await openSafetensors(memorySource(file));
  const rows = Float32Array.from([2, 3, 0.5]);
  const want = (from: Float32Array): number[] => [...from].map((v, i) => v * rows[Math.floor(i / 2)]);
  const f32 = scaledSource(
    src,
    new Map([
      ['a', rows],
      ['b', rows],
    ]),
    false,
  );
  assert.equal(f32.entries.get('b')?.dtype, 'F32');
  const a = await f32.read('a');
  assert.deepEqual([...new Float32Array(a.buffer, a.byteOffset, 6)], want(w));
  const b = await f32.read('b');
  assert.deepEqual([...new Float32Array(b.buffer, b.byteOffset, 6)], want(halfToF32(bits, 'bf16')));
  const half = scaledSource(src, new Map([['b', 3]]), true);
  assert.deepEqual([half.entries.get('b')?.dtype, half.entries.get('b')?.byteLength], ['BF16', 12]);
  const h = await half.read('b', new Uint8Array(12));
  const back = halfToF32(new Uint16Array(h.buffer, h.byteOffset, 6), 'bf16');
  assert.deepEqual(
    [...back],
    [...halfToF32(bits, 'bf16')].map((v) => v * 3),
  ); // exact: 0.25·k·3 fits bf16
  assert.throws(() => scaledSource(src, new Map([['a', Float32Array.of(1, 2)]]), false), /expected 2 rows/);
});

test('falcon-h1 as a bf16 checkpoint: dtype auto keeps the folded matrices bf16, close to the same checkpoint in f32', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'falcon-h1-bf16-'));
  try {
    await cp(join(FAMILY, 'falcon-h1'), dir, { recursive: true });
    const src = await openWeights(join(FAMILY, 'falcon-h1'));
    const tensors = [];
    for (const e of src.entries.values()) {
      const b = await src.read(e.name);
      const f = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      tensors.push({ name: e.name, dtype: 'BF16' as const, shape: e.shape, data: f32ToHalf(f, 'bf16') });
    }
    await src.close();
    await writeFile(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
    const auto = await loadHybridModel(dir, { dtype: 'auto' });
    const f32 = await loadHybridModel(dir, { dtype: 'f32' });
    const params = auto.parameters();
    assert.equal(params.get('model.layers.0.mamba.in_proj.weight')?.dtype, 'bf16'); // folded per row, kept 16-bit
    assert.equal(params.get('model.layers.1.self_attn.k_proj.weight')?.dtype, 'bf16');
    assert.equal(f32.parameters().get('model.layers.0.mamba.in_proj.weight')?.dtype, 'f32');
    const exp = await readExpected(NAME, FAMILY);
    // one more bf16 rounding of the folded weights (relative 2^-9 each) against f32 products of the same
    // bf16 checkpoint: of the order of what rounding the checkpoint to bf16 did in the first place
    const err = maxAbsDiff(await logitsOf(auto, exp.ids), await logitsOf(f32, exp.ids));
    // the checkpoint's own rounding to bf16, for scale: the f32 reference against the bf16 weights in f32
    const own = maxAbsDiff(await logitsOf(f32, exp.ids), exp.logits);
    t.diagnostic(
      `bf16 checkpoint, auto vs f32: ${err.toExponential(2)}; bf16 vs the f32 reference: ${own.toExponential(2)}`,
    );
    assert.ok(err > 0 && err < 2 * own, `auto vs f32: max abs difference ${err}, the bf16 rounding itself ${own}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test(`${NAME}: a prompt fed in pieces through the state gives the logits of all at once`, async () => {
  const model = await loadHybridModel(join(FAMILY, NAME));
  const exp = await readExpected(NAME, FAMILY, 'expected-long.safetensors');
  const ids = exp.ids[0];
  await checkPiecesMatchWhole(model, ids);
});

test(`${NAME}: a saved and restored state, and a clone, continue exactly like the original, past the cache's growth`, async () => {
  const model = await loadHybridModel(join(FAMILY, NAME));
  const exp = await readExpected(NAME, FAMILY, 'expected-long.safetensors');
  const ids = exp.ids[0];
  const V = model.vocabSize;
  const whole = await logitsOf(model, [ids]);
  const state = model.initState(1);
  const cut = 10;
  model.forward(model.backend.upload(Int32Array.from(ids.slice(0, cut)), [1, cut], 'i32'), { state });
  const restored = await decodeState(model, await encodeState(model, state));
  const clone = state.clone();
  assert.equal(restored.position, cut);
  for (let t = cut; t < ids.length; t++) {
    const a = await model.stepIds([ids[t]], state).readFloat();
    assert.deepEqual(await model.stepIds([ids[t]], restored).readFloat(), a, `restored state at position ${t}`);
    assert.deepEqual(await model.stepIds([ids[t]], clone).readFloat(), a, `cloned state at position ${t}`);
    const err = maxAbsDiff(a, whole.subarray(t * V, (t + 1) * V));
    assert.ok(err < 1e-5, `position ${t}: max abs difference ${err}`);
  }
  // every layer keeps both states in one record: Mamba-2's conv and ssm, attention's k, v, length
  assert.deepEqual(Object.keys(state.layers[0]).sort(), ['conv', 'k', 'length', 'ssm', 'v']);
  assert.ok(state.layers[0].k.dim(1) >= ids.length); // 17 positions outgrew the first capacity (16)
  const again = await decodeState(model, await encodeState(model, state));
  assert.deepEqual([...again.layers[0].k.shape], [...state.layers[0].k.shape]);
  assert.deepEqual(await model.stepIds([3], again).readFloat(), await model.stepIds([3], state).readFloat());
  const fresh = model.initState(1);
  fresh.copyFrom(state);
  assert.deepEqual(await model.stepIds([5], fresh).readFloat(), await model.stepIds([5], state).readFloat());
});

test(`${NAME}: state bytes split into a constant part and bytes per token, as info reports them`, async () => {
  const model = await loadHybridModel(join(FAMILY, NAME));
  const c = model.config;
  const m = c.mamba!;
  const conv = m.dInner + 2 * m.nGroups * m.dState; // 80
  // per sequence and layer: conv (c, k) + ssm (h, p, n) + the length counter; k and v rows per token
  const constant = c.nLayer * (4 * (conv * m.dConv + m.nHeads * m.headDim * m.dState) + 4);
  const perToken = c.nLayer * 4 * 2 * c.attention.kvHeads * c.attention.headDim;
  assert.deepEqual(hybridStateBytes(c), { constantBytes: constant, bytesPerToken: perToken });
  // two sequences: twice the states, caches and length counters (each row keeps its own length)
  const state = model.initState(2);
  assert.equal(state.constantBytes, 2 * constant);
  assert.equal(state.bytesPerToken, 2 * perToken);
  assert.equal(state.bytes, 2 * constant + state.layers[0].k.dim(1) * 2 * perToken);
  assert.ok(state.growsWithContext);
});

test('loadModel runs falcon-h1 (the front door): logits and greedy tokens of transformers, info', async () => {
  const exp = await readExpected(NAME, FAMILY);
  const model = await loadModel(join(FAMILY, NAME), { env: { HF_HUB_OFFLINE: '1' } });
  const prompt = exp.ids[0];
  const [logits] = await model.logits([prompt]);
  assert.ok(maxAbsDiff(logits!, exp.logits.subarray(0, prompt.length * exp.V)) < 1e-4);
  const out: number[] = [];
  const n = exp.greedy[0].length - prompt.length;
  for await (const ch of model.generate([prompt], { greedy: true, ignoreEos: true, maxNewTokens: n }))
    out.push(ch.token);
  assert.deepEqual([...prompt, ...out], exp.greedy[0]);
  const info = model.info();
  assert.equal(info.architecture, 'falcon_h1');
  assert.deepEqual(
    [info.stateBytesPerSequence, info.stateBytesPerToken],
    [3 * (4 * (80 * 4 + 6 * 8 * 8) + 4), 3 * 4 * 2 * 2 * 12],
  );
});
