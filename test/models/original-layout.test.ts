import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMambaError } from '../../src/errors.js';
import { generateTokens } from '../../src/generate/generate.js';
import {
  mamba1StateBytesAt,
  parseConfig,
  stateBytes,
  type Mamba2Config,
  type MambaConfig,
} from '../../src/models/config.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { maxAbsDiff, PARITY, readExpected } from '../helpers/fixtures.js';
import { logitsOf, stepVsParallel } from '../helpers/parity.js';

/**
 * Checkpoints in the original mamba_ssm layout (state-spaces/mamba-*, mamba2-*): config.json with
 * d_model / n_layer / ssm_cfg / pad_vocab_size_multiple / tie_embeddings, a torch.save'd
 * pytorch_model.bin (read without Python) with `backbone.embedding.weight` and a padded vocabulary.
 * Fixtures orig-mamba1 (vocab 45 -> 48) and orig-mamba2 (vocab 50 -> 64, 8 heads x 8, chunk 4 <
 * prompt 10); the reference logits are transformers' with the same weights.
 */

for (const [name, arch, rows] of [
  ['orig-mamba1', 'mamba', 48],
  ['orig-mamba2', 'mamba2', 64],
] as const) {
  test(`${name}: config and pytorch_model.bin load as ${arch} in the mamba_ssm layout with the vocabulary padded to ${rows}`, async () => {
    await assert.rejects(stat(join(PARITY, name, 'model.safetensors'))); // the weights can only come from pytorch_model.bin
    const model = await loadLanguageModel(join(PARITY, name));
    assert.equal(model.config.arch, arch);
    assert.equal(model.config.layout, 'mamba_ssm');
    assert.equal(model.vocabSize, rows);
    assert.equal(model.lmHead, model.embeddings, 'tie_embeddings: the head is the embedding matrix');
  });

  test(`${name}: logits match transformers within 1e-4`, async () => {
    const model = await loadLanguageModel(join(PARITY, name));
    const exp = await readExpected(name);
    assert.equal(exp.V, rows);
    const err = maxAbsDiff(await logitsOf(model, exp.ids), exp.logits);
    assert.ok(err < 1e-4, `max abs error ${err}`);
  });

  test(`${name}: greedy generation is identical token for token`, async () => {
    const model = await loadLanguageModel(join(PARITY, name));
    const exp = await readExpected(name);
    const n = exp.greedy[0].length - exp.ids[0].length;
    const out: number[][] = exp.ids.map((p) => [...p]);
    for await (const ev of generateTokens(model, exp.ids, { greedy: true, maxNewTokens: n, ignoreEos: true }))
      out[ev.row].push(ev.token);
    assert.deepEqual(out, exp.greedy);
  });

  test(`${name}: recurrent steps equal the parallel form within 1e-5`, async () => {
    const model = await loadLanguageModel(join(PARITY, name));
    const exp = await readExpected(name);
    const { worst } = await stepVsParallel(model, exp.ids);
    assert.ok(worst < 1e-5, `max abs difference ${worst}`);
  });
}

// ---- config parsing -------------------------------------------------------------------------------

/** state-spaces/mamba-130m and mamba2-130m's config.json, as published. */
const MAMBA_130M = {
  d_model: 768,
  n_layer: 24,
  vocab_size: 50277,
  ssm_cfg: {},
  rms_norm: true,
  residual_in_fp32: true,
  fused_add_norm: true,
  pad_vocab_size_multiple: 8,
};
const MAMBA2_130M = {
  d_model: 768,
  d_intermediate: 0,
  n_layer: 24,
  vocab_size: 50277,
  ssm_cfg: { layer: 'Mamba2' },
  attn_layer_idx: [],
  attn_cfg: {},
  rms_norm: true,
  residual_in_fp32: true,
  fused_add_norm: true,
  pad_vocab_size_multiple: 16,
  tie_embeddings: true,
};

test("mamba-130m's original config: Mamba-1 with mamba_simple defaults and the vocabulary padded to 8", () => {
  const c = parseConfig(MAMBA_130M) as MambaConfig;
  assert.deepEqual(
    {
      arch: c.arch,
      layout: c.layout,
      V: c.vocabSize,
      e: c.dInner,
      n: c.dState,
      k: c.dConv,
      r: c.dtRank,
      bias: c.useBias,
      convBias: c.useConvBias,
      tie: c.tieEmbeddings,
      eps: c.normEps,
    },
    {
      arch: 'mamba',
      layout: 'mamba_ssm',
      V: 50280,
      e: 1536,
      n: 16,
      k: 4,
      r: 48,
      bias: false,
      convBias: true,
      tie: true,
      eps: 1e-5,
    },
  );
});

test("mamba2-130m's original config: Mamba-2 with mamba2.Mamba2 defaults (64-dim heads, d_state 128, 1 group, chunk 256)", () => {
  const c = parseConfig(MAMBA2_130M) as Mamba2Config;
  assert.deepEqual(
    {
      arch: c.arch,
      layout: c.layout,
      V: c.vocabSize,
      e: c.dInner,
      h: c.nHeads,
      p: c.headDim,
      g: c.nGroups,
      n: c.dState,
      k: c.dConv,
      Q: c.chunkSize,
      lim: c.timeStepLimit,
      normBeforeGate: c.normBeforeGate,
      normGroupSize: c.normGroupSize,
      tie: c.tieEmbeddings,
    },
    {
      arch: 'mamba2',
      layout: 'mamba_ssm',
      V: 50288,
      e: 1536,
      h: 24,
      p: 64,
      g: 1,
      n: 128,
      k: 4,
      Q: 256,
      lim: [0, Infinity],
      normBeforeGate: false,
      normGroupSize: 1536,
      tie: true,
    },
  );
});

test('state size: mamba2-130m holds 6.63x the state of mamba-130m at the same d_model and depth', () => {
  const m1 = stateBytes(parseConfig(MAMBA_130M));
  const m2 = stateBytes(parseConfig(MAMBA2_130M));
  assert.equal(m1, 24 * 1536 * (4 + 16) * 4); // 2,949,120 bytes: conv (e, k) + ssm (e, n) per layer
  assert.equal(m2, 24 * ((1536 + 2 * 128) * 4 + 24 * 64 * 128) * 4); // 19,562,496 bytes: conv (e + 2gn, k) + ssm (h, p, n)
  assert.equal(m1, mamba1StateBytesAt(768, 24));
  assert.equal((m2 / m1).toFixed(2), '6.63');
});

test('original Mamba-2 options: ngroups makes the gated norm per group (mamba_ssm), norm_before_gate, dt_limit, biases', () => {
  const c = parseConfig({
    ...MAMBA2_130M,
    ssm_cfg: {
      layer: 'Mamba2',
      ngroups: 4,
      headdim: 32,
      d_state: 64,
      norm_before_gate: true,
      dt_limit: [0.001, 0.5],
      bias: true,
      conv_bias: false,
      chunk_size: 128,
      A_init_range: [1, 16],
    },
  }) as Mamba2Config;
  assert.deepEqual(
    {
      h: c.nHeads,
      p: c.headDim,
      g: c.nGroups,
      n: c.dState,
      normGroupSize: c.normGroupSize,
      normBeforeGate: c.normBeforeGate,
      lim: c.timeStepLimit,
      bias: c.useBias,
      convBias: c.useConvBias,
      Q: c.chunkSize,
    },
    {
      h: 48,
      p: 32,
      g: 4,
      n: 64,
      normGroupSize: 384,
      normBeforeGate: true,
      lim: [0.001, 0.5],
      bias: true,
      convBias: false,
      Q: 128,
    },
  );
  const m1 = parseConfig({
    ...MAMBA_130M,
    ssm_cfg: { layer: 'Mamba1', d_state: 8, expand: 3, dt_rank: 12, bias: true, dt_min: 0.01 },
    tie_embeddings: false,
  }) as MambaConfig;
  assert.deepEqual(
    { e: m1.dInner, n: m1.dState, r: m1.dtRank, bias: m1.useBias, tie: m1.tieEmbeddings },
    { e: 2304, n: 8, r: 12, bias: true, tie: false },
  );
});

test('original configs mamba-ts cannot run are refused clearly: MLP blocks, attention layers, LayerNorm, other layers, partial SSM', () => {
  const refused = (cfg: unknown, code: 'UNSUPPORTED' | 'CORRUPT_FILE', re: RegExp): void => {
    assert.throws(
      () => parseConfig(cfg, 'config.json'),
      (e: unknown) => isMambaError(e, code) && re.test(e.message),
      `${JSON.stringify(cfg).slice(0, 80)} -> ${re}`,
    );
  };
  refused(
    { ...MAMBA2_130M, d_intermediate: 1536 },
    'UNSUPPORTED',
    /config\.json: d_intermediate 1536 adds an MLP after each mixer .*d_intermediate 0/,
  );
  refused(
    { ...MAMBA2_130M, attn_layer_idx: [3, 9] },
    'UNSUPPORTED',
    /attn_layer_idx \[3,9\] makes those layers attention/,
  );
  refused({ ...MAMBA_130M, rms_norm: false }, 'UNSUPPORTED', /rms_norm false means LayerNorm/);
  refused({ ...MAMBA_130M, ssm_cfg: { layer: 'Mamba4' } }, 'UNSUPPORTED', /ssm_cfg.*layer "Mamba4" is not supported/);
  refused(
    { ...MAMBA2_130M, ssm_cfg: { layer: 'Mamba2', d_ssm: 768 } },
    'UNSUPPORTED',
    /d_ssm 768 runs the SSM on part of d_inner 1536/,
  );
  refused({ ...MAMBA2_130M, ssm_cfg: { layer: 'Mamba2', D_has_hdim: true } }, 'UNSUPPORTED', /D_has_hdim/);
  refused({ ...MAMBA2_130M, ssm_cfg: { layer: 'Mamba2', rmsnorm: false } }, 'UNSUPPORTED', /rmsnorm false/);
  refused(
    { ...MAMBA2_130M, ssm_cfg: { layer: 'Mamba2', headdim: 100 } },
    'CORRUPT_FILE',
    /d_inner 1536 .* is not a multiple of headdim 100/,
  );
  refused(
    { ...MAMBA_130M, ssm_cfg: { d_state: 16, expand_factor: 2 } },
    'CORRUPT_FILE',
    /"expand_factor" is not an argument of mamba_ssm's mamba_simple\.Mamba/,
  );
  refused(
    { ...MAMBA_130M, norm_epsilon: 1e-6 },
    'CORRUPT_FILE',
    /"norm_epsilon" is not a key of mamba_ssm's MambaConfig/,
  );
  refused({ ...MAMBA_130M, pad_vocab_size_multiple: 0 }, 'CORRUPT_FILE', /pad_vocab_size_multiple must be >= 1/);
});

test('an original-layout checkpoint whose config disagrees with its weights names the tensor and the config keys', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mamba-ts-orig-'));
  try {
    await cp(join(PARITY, 'orig-mamba2', 'pytorch_model.bin'), join(dir, 'pytorch_model.bin'));
    const cfg = JSON.parse(await readFile(join(PARITY, 'orig-mamba2', 'config.json'), 'utf8'));
    cfg.ssm_cfg.d_state = 6;
    await writeFile(join(dir, 'config.json'), JSON.stringify(cfg));
    await assert.rejects(
      loadLanguageModel(dir),
      (e: unknown) =>
        isMambaError(e, 'CONFIG_MISMATCH') &&
        /tensor backbone\.layers\.0\.mixer\.in_proj\.weight has shape \(152, 32\), but the config implies \(148, 32\)/.test(
          e.message,
        ) &&
        /ngroups 1 x d_state 6/.test(e.message),
    );
    cfg.ssm_cfg.d_state = 8;
    cfg.tie_embeddings = false;
    cfg.vocab_size = 70; // padded to 80 rows: the stored embedding has 64
    await writeFile(join(dir, 'config.json'), JSON.stringify(cfg));
    await assert.rejects(
      loadLanguageModel(dir),
      (e: unknown) =>
        isMambaError(e, 'CONFIG_MISMATCH') &&
        /tensor backbone\.embedding\.weight has shape \(64, 32\), but the config implies \(80, 32\)/.test(e.message) &&
        /vocab_size \(padded to pad_vocab_size_multiple\) 80/.test(e.message),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
