import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { isMambaError } from '../../src/errors.js';
import { openSafetensorsFile } from '../../src/io/node/safetensors-file.js';
import { expectedMambaTensors } from '../../src/models/build-mamba.js';
import { parseConfig } from '../../src/models/config.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { loadTokenizer } from '../../src/tokenizer/node.js';
import { readF32Tensors, recoverCheckpointDir, writeCheckpointDir } from '../../src/train/checkpoint.js';
import { resumeRun, startRun, train, type TrainerState } from '../../src/train/trainer.js';
import { PARITY } from '../helpers/fixtures.js';
import { smallText, tempDir, tinySettings } from './helpers.js';

const bk = cpu();
const state = (dir: string): TrainerState =>
  JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as TrainerState;

test('checkpoint directories are replaced atomically; a crash between the renames is recovered; a failed write leaves the old one', async () => {
  const root = tempDir();
  const dir = join(root, 'ckpt');
  const files = (v: string) => ({
    model: [{ name: 'w', dtype: 'F32' as const, shape: [2], data: Float32Array.of(1, 2) }],
    files: { 'a.json': { v }, 'b.txt': v },
  });
  await writeCheckpointDir(dir, files('one'));
  await writeCheckpointDir(dir, files('two'));
  assert.equal(readFileSync(join(dir, 'b.txt'), 'utf8'), 'two');
  assert.deepEqual(readdirSync(root), ['ckpt']); // no temporary or old directories left
  // Killed after `dir -> dir.old`, before `tmp -> dir`: the old checkpoint comes back.
  renameSync(dir, `${dir}.old`);
  await recoverCheckpointDir(dir);
  assert.equal(readFileSync(join(dir, 'b.txt'), 'utf8'), 'two');
  // A write that fails (a tensor whose data does not fit its shape) changes nothing.
  await assert.rejects(
    writeCheckpointDir(dir, {
      model: [{ name: 'w', dtype: 'F32', shape: [3], data: Float32Array.of(1) }],
      files: { 'b.txt': 'three' },
    }),
    (e: unknown) => isMambaError(e, 'SHAPE_MISMATCH'),
  );
  assert.equal(readFileSync(join(dir, 'b.txt'), 'utf8'), 'two');
  assert.deepEqual(readdirSync(root), ['ckpt']);
  assert.deepEqual([...(await readF32Tensors(join(dir, 'model.safetensors'))).get('w')!], [1, 2]);
});

test('resume: stopping after step 3 and resuming gives exactly the losses and weights of an uninterrupted run', async () => {
  const root = tempDir();
  const data = smallText(root, 3);
  const settings = tinySettings();
  const full = join(root, 'full'),
    parts = join(root, 'parts');
  await train(await startRun({ data, settings, steps: 7, outDir: full, backend: bk }));
  const run = await startRun({ data, settings, steps: 7, outDir: parts, backend: bk });
  const ac = new AbortController();
  const first = await train(run, {
    signal: ac.signal,
    onStep: (r) => {
      if (r.step === 3) ac.abort();
    },
  });
  assert.deepEqual(first, { interrupted: true, step: 3 });
  assert.equal(state(parts).step, 3);
  const second = await train(await resumeRun({ outDir: parts, backend: bk }));
  assert.equal(second.step, 7);
  const a = state(full),
    b = state(parts);
  assert.deepEqual(b.history, a.history);
  assert.deepEqual(b.evals, a.evals);
  assert.deepEqual(b.final, a.final);
  assert.deepEqual(b.sampler, a.sampler);
  const wa = await readF32Tensors(join(full, 'model.safetensors')),
    wb = await readF32Tensors(join(parts, 'model.safetensors'));
  for (const [k, v] of wa) assert.deepEqual(wb.get(k), v, k);
  const oa = await readF32Tensors(join(full, 'optimizer.safetensors')),
    ob = await readF32Tensors(join(parts, 'optimizer.safetensors'));
  for (const [k, v] of oa) assert.deepEqual(ob.get(k), v, k);
  // Losses fall on this text (the run trains).
  assert.ok(a.history[6].loss < a.history[0].loss);
  // Asking a finished run for fewer steps than done is an error; a started run refuses a new start.
  await assert.rejects(resumeRun({ outDir: full, backend: bk, steps: 5 }), (e: unknown) =>
    isMambaError(e, 'BAD_ARGUMENT'),
  );
  await assert.rejects(
    startRun({ data, settings, steps: 7, outDir: full, backend: bk }),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /--resume/.test((e as Error).message),
  );
});

test('the output directory is a Hugging Face checkpoint that mamba-ts loads with identical logits', async () => {
  const root = tempDir();
  const out = join(root, 'out');
  const run = await startRun({
    data: smallText(root, 2),
    settings: tinySettings(),
    steps: 2,
    outDir: out,
    backend: bk,
  });
  await train(run);
  for (const f of [
    'config.json',
    'generation_config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
    'optimizer.safetensors',
    'trainer_state.json',
    'loss_curve.svg',
    'check.safetensors',
  ]) {
    assert.ok(existsSync(join(out, f)), f);
  }
  // config.json: exactly the keys transformers' MambaConfig writes (the PyTorch fixture's, less the version stamp).
  const cfgJson = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  const hfKeys = Object.keys(
    JSON.parse(readFileSync(join(PARITY, 'mamba1-grad', 'config.json'), 'utf8')) as object,
  ).filter((k) => k !== 'transformers_version');
  assert.deepEqual(Object.keys(cfgJson).sort(), hfKeys.sort());
  assert.equal(cfgJson.model_type, 'mamba');
  // transformers 5 validates types strictly: float fields must be written as floats.
  assert.match(readFileSync(join(out, 'config.json'), 'utf8'), /"time_step_scale": 1\.0,/);
  // transformers would rescale the loaded out_proj weights by 1/√n_layer if this were true.
  assert.equal(cfgJson.rescale_prenorm_residual, false);
  assert.deepEqual(cfgJson.architectures, ['MambaForCausalLM']);
  assert.deepEqual(parseConfig(cfgJson), run.lm.config);
  // model.safetensors: Hugging Face names and shapes (conv1d.weight (e, 1, k)), F32, format pt.
  const st = await openSafetensorsFile(join(out, 'model.safetensors'));
  const cfg = run.lm.config;
  assert.ok(cfg.arch === 'mamba');
  const want = expectedMambaTensors(cfg).filter((t) => !t.optional);
  assert.deepEqual([...st.entries.keys()].sort(), want.map((t) => t.name).sort());
  for (const t of want) assert.deepEqual(st.entries.get(t.name)!.shape, t.shape, t.name);
  assert.equal(st.metadata.format, 'pt');
  await st.close();
  // Loaded back: identical weights, identical logits (check.safetensors holds the trained model's).
  const lm = await loadLanguageModel(out);
  const check = await readCheck(join(out, 'check.safetensors'));
  const logits = bk.readSync(lm.forward(bk.upload(check.ids, check.shape, 'i32')));
  assert.deepEqual(logits, check.logits);
  const tok = await loadTokenizer(out);
  assert.equal(tok.vocabSize, run.tokenizer.vocabSize);
  assert.deepEqual(tok.encode('The jury said.'), run.tokenizer.encode('The jury said.'));
  // The loss curve is an SVG with one point per step and the validation points.
  const svg = readFileSync(join(out, 'loss_curve.svg'), 'utf8');
  assert.ok(svg.startsWith('<svg') && svg.trimEnd().endsWith('</svg>') && !/NaN|undefined/.test(svg));
  assert.equal((svg.match(/<circle /g) ?? []).length, state(out).evals.length);
});

async function readCheck(path: string): Promise<{ ids: Int32Array; shape: number[]; logits: Float32Array }> {
  const st = await openSafetensorsFile(path);
  const ids = await st.read('input_ids'),
    lg = await st.read('logits');
  const out = {
    ids: new Int32Array(ids.buffer.slice(ids.byteOffset, ids.byteOffset + ids.byteLength)),
    shape: [...st.entries.get('input_ids')!.shape],
    logits: new Float32Array(lg.buffer.slice(lg.byteOffset, lg.byteOffset + lg.byteLength)),
  };
  await st.close();
  return out;
}
