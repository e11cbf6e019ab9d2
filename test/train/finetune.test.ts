import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpu, CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { isMambaError } from '../../src/errors.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { loadTokenizer } from '../../src/tokenizer/node.js';
import { readF32Tensors } from '../../src/train/checkpoint.js';
import { encodeDocuments, splitDocuments } from '../../src/train/data.js';
import { evaluate, tokenByteLengths } from '../../src/train/evaluate.js';
import { startFineTune } from '../../src/train/finetune.js';
import { parseTrainSettings } from '../../src/train/settings.js';
import { resumeRun, startRun, train, type TrainerState } from '../../src/train/trainer.js';
import { ROOT } from '../helpers/fixtures.js';
import { brownFirst, smallText, tempDir, TINY_CONFIG } from './helpers.js';

/**
 * Fine-tuning (`train --from`): the shipped default model (Mamba-1, 6 layers x 128) trained a few steps
 * on a small text gets a lower loss on it, keeps its config and tokenizer files byte for byte, loads
 * back with the logits it was saved with, freezes its embeddings bit for bit when asked, and resumes;
 * a Mamba-2 checkpoint fine-tunes the same way; a backend without the scan's backward is a clear error.
 */
const bk = cpu();
const DEFAULT = join(ROOT, 'models', 'default');
const FT = parseTrainSettings(
  {
    train: {
      seq_len: 32,
      batch_size: 2,
      lr: 2e-3,
      min_lr: 2e-3,
      warmup_steps: 1,
      weight_decay: 0,
      eval_every: 100,
      eval_tokens: 512,
      save_every: 100,
      seed: 3,
      val_fraction: 0.05,
    },
  },
  'fine-tune settings',
);
const state = (dir: string): TrainerState =>
  JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as TrainerState;
const EMB = 'backbone.embeddings.weight';

/** The default model's loss on the training split of `data` (the fine-tuning text). */
async function trainLoss(dir: string, data: string): Promise<number> {
  const lm = await loadLanguageModel(dir);
  const tok = await loadTokenizer(dir);
  const docs = [{ name: 'text', text: readFileSync(data, 'utf8') }];
  const tokens = encodeDocuments(tok, splitDocuments(docs, { valFraction: 0.05 }).train);
  const r = await evaluate(lm, tokens, tokenByteLengths(tok, lm.vocabSize), {
    seqLen: 32,
    batchSize: 4,
    maxTokens: 1024,
  });
  return r.loss;
}

test('fine-tuning the default model: the loss drops, files are kept, the output loads, frozen embeddings stay bit-identical', async () => {
  const root = tempDir();
  const data = join(root, 'text.txt');
  writeFileSync(data, brownFirst(1)[0].text);
  const before = await trainLoss(DEFAULT, data);
  const source = await readF32Tensors(join(DEFAULT, 'model.safetensors'));
  for (const freeze of [false, true]) {
    const out = join(root, freeze ? 'frozen' : 'full');
    const run = await startFineTune({
      fromDir: DEFAULT,
      data,
      settings: FT,
      steps: 8,
      outDir: out,
      backend: bk,
      freezeEmbeddings: freeze,
    });
    assert.equal(run.lm.config.arch, 'mamba');
    await train(run);
    const after = await trainLoss(out, data);
    assert.ok(after < before - 0.05, `freeze ${freeze}: loss on the text ${before.toFixed(4)} -> ${after.toFixed(4)}`);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'])
      assert.equal(readFileSync(join(out, f), 'utf8'), readFileSync(join(DEFAULT, f), 'utf8'), f);
    assert.deepEqual(state(out).from, { model: DEFAULT, freezeEmbeddings: freeze });
    // Loaded back: the logits saved with it.
    const lm = await loadLanguageModel(out);
    const ids = Int32Array.from({ length: 20 }, (_, i) => (i * 101) % 2048);
    const want = noGrad(() => bk.readSync(run.lm.forward(bk.upload(ids, [2, 10], 'i32'))));
    assert.deepEqual(bk.readSync(lm.forward(bk.upload(ids, [2, 10], 'i32'))), want);
    const w = await readF32Tensors(join(out, 'model.safetensors'));
    const changed = (name: string): boolean => !w.get(name)!.every((v, i) => v === source.get(name)![i]);
    assert.equal(changed(EMB), !freeze, 'embeddings');
    assert.ok(changed('backbone.layers.0.mixer.in_proj.weight'), 'in_proj trained');
    if (freeze) {
      const opt = await readF32Tensors(join(out, 'optimizer.safetensors'));
      assert.ok(!opt.has(`m.${EMB}`), 'no moments for frozen embeddings');
      // Resumed for two more steps: still frozen.
      await train(await resumeRun({ outDir: out, backend: bk, steps: 10 }));
      assert.equal(state(out).step, 10);
      const w2 = await readF32Tensors(join(out, 'model.safetensors'));
      assert.deepEqual(w2.get(EMB), source.get(EMB));
    }
  }
});

test('fine-tuning a Mamba-2 checkpoint; a backend without ssdScanBackward is UNSUPPORTED naming it', async () => {
  const root = tempDir();
  const data = smallText(root, 2);
  const base = join(root, 'base'),
    out = join(root, 'out');
  const settings = parseTrainSettings(
    { ...TINY_CONFIG, model: { arch: 'mamba2', d_model: 16, n_layer: 1, d_state: 8, head_dim: 8, chunk_size: 8 } },
    'mamba2',
  );
  await train(await startRun({ data, settings, steps: 2, outDir: base, backend: bk }));
  const run = await startFineTune({ fromDir: base, data, settings, steps: 3, outDir: out, backend: bk });
  await train(run);
  assert.equal(state(out).step, 3);
  assert.equal(readFileSync(join(out, 'config.json'), 'utf8'), readFileSync(join(base, 'config.json'), 'utf8'));
  assert.equal((await loadLanguageModel(out)).config.arch, 'mamba2');
  const lacking = new CpuBackend({ kernels: 'ts' });
  Object.assign(lacking, { ssdScanBackward: undefined });
  await assert.rejects(
    startFineTune({ fromDir: base, data, settings, steps: 1, outDir: join(root, 'x'), backend: lacking }),
    (e: unknown) => isMambaError(e, 'UNSUPPORTED') && /ssdScanBackward/.test((e as Error).message),
  );
});

test('train CLI --from: fine-tunes a directory with --freeze-embeddings; misuse is a clear error', () => {
  const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
  const cli = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  const root = tempDir();
  const data = smallText(root, 1);
  const out = join(root, 'out');
  const cfg = join(root, 'ft.json');
  writeFileSync(cfg, JSON.stringify({ train: { seq_len: 16, batch_size: 1, eval_tokens: 64 } }));
  const r = cli([
    'train',
    '--from',
    DEFAULT,
    '--data',
    data,
    '--steps',
    '2',
    '--out',
    out,
    '--config',
    cfg,
    '--freeze-embeddings',
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /fine-tuning .*default: mamba, 6 layers x d_model 128, .* \(embeddings frozen\)/);
  assert.equal(
    readFileSync(join(out, 'tokenizer.json'), 'utf8'),
    readFileSync(join(DEFAULT, 'tokenizer.json'), 'utf8'),
  );
  const withModel = join(root, 'model.json');
  writeFileSync(withModel, JSON.stringify({ model: { d_model: 32 } }));
  const bad = [
    [['--config', withModel], /has a "model" section, but fine-tuning keeps the checkpoint's model/],
    [['--from', join(root, 'nowhere')], /nowhere/],
  ] as const;
  for (const [args, re] of bad) {
    const e = cli(['train', '--from', DEFAULT, '--data', data, '--steps', '1', '--out', join(root, 'o2'), ...args]);
    assert.notEqual(e.status, 0);
    assert.match(e.stderr, re);
  }
  const nf = cli(['train', '--data', data, '--steps', '1', '--out', join(root, 'o3'), '--freeze-embeddings']);
  assert.match(nf.stderr, /--freeze-embeddings is an option of fine-tuning/);
  const rs = cli(['train', '--resume', '--out', out, '--from', DEFAULT]);
  assert.match(rs.stderr, /do not give --from/);
});
