import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpu, CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { isMambaError } from '../../src/errors.js';
import { openSafetensorsFile } from '../../src/io/node/safetensors-file.js';
import { expectedMamba3Tensors } from '../../src/models/build-mamba3.js';
import { parseConfig } from '../../src/models/config.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { startFineTune } from '../../src/train/finetune.js';
import { initMamba3Parameters } from '../../src/train/init-mamba3.js';
import { parseTrainSettings } from '../../src/train/settings.js';
import { resumeRun, startRun, train, type TrainerState } from '../../src/train/trainer.js';
import { smallText, tempDir, TINY_CONFIG } from './helpers.js';

/**
 * `mamba-ts train` with a Mamba-3 config (SISO and MIMO): the run trains (the loss falls) and resumes
 * exactly; its output is a checkpoint in mamba_ssm's layout (config.json with ssm_cfg.layer "Mamba3", the
 * tensors mamba_ssm's MambaLMHeadModel has) that mamba-ts loads back with identical logits; it fine-tunes
 * (`train --from`) keeping that config; bad Mamba-3 settings are clear errors.
 */
const bk = cpu();
const MAMBA3 = {
  ...TINY_CONFIG,
  model: { arch: 'mamba3', d_model: 16, n_layer: 2, d_state: 8, head_dim: 8, n_groups: 1, chunk_size: 8 },
};
const state = (dir: string): TrainerState =>
  JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as TrainerState;

for (const [name, extra] of [
  ['SISO', {}],
  ['MIMO rank 2, output norm, rope fraction 1', { mimo_rank: 2, outproj_norm: true, rope_fraction: 1 }],
] as const) {
  test(`Mamba-3 ${name}: trains, resumes exactly, writes a mamba_ssm-layout checkpoint that loads with identical logits`, async () => {
    const root = tempDir();
    const data = smallText(root, 3);
    const settings = parseTrainSettings({ ...MAMBA3, model: { ...MAMBA3.model, ...extra } }, 'mamba3 config');
    const full = join(root, 'full'),
      parts = join(root, 'parts');
    const run = await startRun({ data, settings, steps: 6, outDir: full, backend: bk });
    const cfg = run.lm.config;
    assert.ok(cfg.arch === 'mamba3');
    assert.equal(cfg.isMimo, 'mimo_rank' in extra);
    await train(run);
    const a = state(full);
    assert.ok(a.history[5].loss < a.history[0].loss, `losses ${a.history.map((h) => h.loss.toFixed(3)).join(' ')}`);
    const ac = new AbortController();
    await train(await startRun({ data, settings, steps: 6, outDir: parts, backend: bk }), {
      signal: ac.signal,
      onStep: (r) => {
        if (r.step === 2) ac.abort();
      },
    });
    await train(await resumeRun({ outDir: parts, backend: bk }));
    assert.deepEqual(state(parts).history, a.history);
    // config.json: mamba_ssm's MambaConfig with a Mamba3 ssm_cfg, read back to the same config
    const cfgJson = JSON.parse(readFileSync(join(full, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal((cfgJson.ssm_cfg as Record<string, unknown>).layer, 'Mamba3');
    assert.equal(cfgJson.model_type, undefined);
    const back = parseConfig(cfgJson);
    assert.deepEqual(
      { ...back, eosTokenId: cfg.eosTokenId, bosTokenId: cfg.bosTokenId, padTokenId: cfg.padTokenId },
      cfg,
    );
    const st = await openSafetensorsFile(join(full, 'model.safetensors'));
    const want = expectedMamba3Tensors(cfg).filter((t) => !t.optional);
    assert.deepEqual([...st.entries.keys()].sort(), want.map((t) => t.name).sort());
    for (const t of want) assert.deepEqual(st.entries.get(t.name)!.shape, t.shape, t.name);
    await st.close();
    const lm = await loadLanguageModel(full);
    const ids = Int32Array.from({ length: 24 }, (_, i) => (i * 37) % 200);
    const logits = noGrad(() => bk.readSync(run.lm.forward(bk.upload(ids, [2, 12], 'i32'))));
    assert.deepEqual(bk.readSync(lm.forward(bk.upload(ids, [2, 12], 'i32'))), logits);
    // fine-tuned from it: the mamba_ssm config is kept byte for byte, the weights change
    const ft = join(root, 'ft');
    const ftRun = await startFineTune({ fromDir: full, data, settings, steps: 2, outDir: ft, backend: bk });
    await train(ftRun);
    assert.equal(readFileSync(join(ft, 'config.json'), 'utf8'), readFileSync(join(full, 'config.json'), 'utf8'));
    const tuned = await loadLanguageModel(ft);
    assert.notDeepEqual(bk.readSync(tuned.forward(bk.upload(ids, [2, 12], 'i32'))), logits);
  });
}

test("Mamba-3's initialisation: mamba_ssm's rules, every tensor of the checkpoint", () => {
  const settings = parseTrainSettings(
    { ...MAMBA3, model: { ...MAMBA3.model, mimo_rank: 4, outproj_norm: true } },
    'mamba3 config',
  );
  const c = parseConfig({
    d_model: 16,
    n_layer: 2,
    vocab_size: 64,
    ssm_cfg: { layer: 'Mamba3', d_state: 8, headdim: 8, is_mimo: true, mimo_rank: 4, is_outproj_norm: true },
  });
  assert.ok(c.arch === 'mamba3' && settings.model.arch === 'mamba3');
  const p = initMamba3Parameters(c, { seed: 1 });
  const expected = expectedMamba3Tensors(c).filter((t) => !t.optional);
  assert.deepEqual([...p.keys()].sort(), expected.map((t) => t.name).sort());
  const m = 'backbone.layers.1.mixer.';
  for (const [name, v] of [
    [`${m}B_bias`, 1],
    [`${m}C_bias`, 1],
    [`${m}D`, 1],
    [`${m}mimo_x`, 0.25],
    [`${m}mimo_o`, 0.25],
    [`${m}mimo_z`, 1],
    [`${m}norm.weight`, 1],
    ['backbone.norm_f.weight', 1],
  ] as const)
    assert.ok(
      p.get(name)!.data.every((x) => x === v),
      name,
    );
  const softplus = (x: number): number => Math.log1p(Math.exp(x));
  for (const x of p.get(`${m}dt_bias`)!.data) assert.ok(softplus(x) >= 1e-4 * 0.999 && softplus(x) <= 0.1 * 1.001);
  const bound = 1 / Math.sqrt(16);
  assert.ok(p.get(`${m}in_proj.weight`)!.data.every((x) => Math.abs(x) <= bound));
});

test('Mamba-3 settings: rope_fraction 0.5 or 1, mimo_rank at most 8, head_dim dividing d_inner; a backend without the backward is named', async () => {
  for (const [model, re] of [
    [{ rope_fraction: 0.7 }, /rope_fraction.*0\.5 or 1/],
    [{ mimo_rank: 9 }, /mimo_rank.*0 \(SISO\) to 8/],
    [{ head_dim: 5 }, /head_dim.*must divide d_inner/],
  ] as const)
    assert.throws(
      () => parseTrainSettings({ ...MAMBA3, model: { ...MAMBA3.model, ...model } }, 'cfg.json'),
      (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && re.test((e as Error).message),
    );
  const root = tempDir();
  const lacking = new CpuBackend({ kernels: 'ts' });
  Object.assign(lacking, { mamba3ScanBackward: undefined });
  await assert.rejects(
    startRun({
      data: smallText(root, 1),
      settings: parseTrainSettings(MAMBA3, 'mamba3 config'),
      steps: 1,
      outDir: join(root, 'x'),
      backend: lacking,
    }),
    (e: unknown) => isMambaError(e, 'UNSUPPORTED') && /mamba3ScanBackward/.test((e as Error).message),
  );
});
