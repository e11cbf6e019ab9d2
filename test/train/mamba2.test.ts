import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { isMambaError } from '../../src/errors.js';
import { openSafetensorsFile } from '../../src/io/node/safetensors-file.js';
import { expectedMamba2Tensors } from '../../src/models/build-mamba2.js';
import { parseConfig } from '../../src/models/config.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { checkTrainable } from '../../src/train/model-io.js';
import { parseTrainSettings } from '../../src/train/settings.js';
import { resumeRun, startRun, train, type TrainerState } from '../../src/train/trainer.js';
import { PARITY } from '../helpers/fixtures.js';
import { smallText, tempDir, TINY_CONFIG } from './helpers.js';

/**
 * `mamba-ts train` with a Mamba-2 config: the run trains (the loss falls), resumes exactly, and its
 * output is a transformers `mamba2` checkpoint that mamba-ts loads back with identical logits.
 */
const bk = cpu();
const MAMBA2 = {
  ...TINY_CONFIG,
  model: { arch: 'mamba2', d_model: 16, n_layer: 2, d_state: 8, head_dim: 8, n_groups: 1, chunk_size: 8 },
};
const state = (dir: string): TrainerState =>
  JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as TrainerState;

test('Mamba-2: a run trains, resumes exactly and writes a mamba2 checkpoint that loads with identical logits', async () => {
  const root = tempDir();
  const data = smallText(root, 3);
  const settings = parseTrainSettings(MAMBA2, 'mamba2 config');
  const full = join(root, 'full'),
    parts = join(root, 'parts');
  const run = await startRun({ data, settings, steps: 6, outDir: full, backend: bk });
  assert.equal(run.lm.config.arch, 'mamba2');
  await train(run);
  const a = state(full);
  assert.ok(a.history[5].loss < a.history[0].loss, `losses ${a.history.map((h) => h.loss.toFixed(3)).join(' ')}`);
  // Interrupted after step 2 and resumed: the same run.
  const ac = new AbortController();
  await train(await startRun({ data, settings, steps: 6, outDir: parts, backend: bk }), {
    signal: ac.signal,
    onStep: (r) => {
      if (r.step === 2) ac.abort();
    },
  });
  await train(await resumeRun({ outDir: parts, backend: bk }));
  assert.deepEqual(state(parts).history, a.history);
  // config.json: transformers' Mamba2Config keys, infinity as transformers writes it.
  const text = readFileSync(join(full, 'config.json'), 'utf8');
  const cfgJson = JSON.parse(text) as Record<string, unknown>;
  assert.equal(cfgJson.model_type, 'mamba2');
  assert.deepEqual(cfgJson.architectures, ['Mamba2ForCausalLM']);
  assert.deepEqual(cfgJson.time_step_limit, [0, { __float__: 'Infinity' }]);
  assert.match(text, /"time_step_limit": \[\s*0\.0,/);
  assert.equal(cfgJson.num_heads, 4);
  // exactly the keys transformers' Mamba2Config writes (the PyTorch fixture's, less the version stamp)
  const hfKeys = Object.keys(
    JSON.parse(readFileSync(join(PARITY, 'mamba2-grad', 'config.json'), 'utf8')) as object,
  ).filter((k) => k !== 'transformers_version');
  assert.deepEqual(Object.keys(cfgJson).sort(), hfKeys.sort());
  assert.deepEqual(parseConfig(cfgJson), run.lm.config);
  const st = await openSafetensorsFile(join(full, 'model.safetensors'));
  const cfg = run.lm.config;
  assert.ok(cfg.arch === 'mamba2');
  const want = expectedMamba2Tensors(cfg).filter((t) => !t.optional);
  assert.deepEqual([...st.entries.keys()].sort(), want.map((t) => t.name).sort());
  for (const t of want) assert.deepEqual(st.entries.get(t.name)!.shape, t.shape, t.name);
  await st.close();
  const lm = await loadLanguageModel(full);
  const ids = Int32Array.from({ length: 24 }, (_, i) => (i * 37) % 200);
  const want2 = noGrad(() => bk.readSync(run.lm.forward(bk.upload(ids, [2, 12], 'i32'))));
  assert.deepEqual(bk.readSync(lm.forward(bk.upload(ids, [2, 12], 'i32'))), want2);
});

test('Mamba-2 settings: head_dim must divide d_inner and n_groups the heads', () => {
  for (const [model, re] of [
    [{ arch: 'mamba2', d_model: 16, head_dim: 5 }, /head_dim.*must divide d_inner/],
    [{ arch: 'mamba2', d_model: 16, head_dim: 8, n_groups: 3 }, /n_groups.*must divide the 4 heads/],
  ] as const)
    assert.throws(
      () => parseTrainSettings({ model }, 'c.json'),
      (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && re.test((e as Error).message),
    );
});

test('a model with a mixer the trainer has no backward for (Hyena) is UNSUPPORTED naming that mixer', async () => {
  const root = tempDir();
  const settings = parseTrainSettings(MAMBA2, 'mamba2 config');
  const run = await startRun({ data: smallText(root, 1), settings, steps: 1, outDir: join(root, 'o'), backend: bk });
  Object.assign(run.lm.blocks[1].mixer, { kind: 'hyena' }); // as a Hyena block would be
  assert.throws(
    () => checkTrainable(run.lm),
    (e: unknown) =>
      isMambaError(e, 'UNSUPPORTED') && /this model is mamba2: its hyena mixers have no backward/.test(String(e)),
  );
});
