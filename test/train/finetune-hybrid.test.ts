import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { encodeSafetensors } from '../../src/io/safetensors-writer.js';
import { openSafetensorsFile } from '../../src/io/node/safetensors-file.js';
import { expectedHybridTensors } from '../../src/models/build-hybrid.js';
import type { HybridConfig } from '../../src/models/config-hybrid.js';
import { loadAnyLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { ByteLevelTokenizer } from '../../src/tokenizer/byte-level.js';
import { readF32Tensors } from '../../src/train/checkpoint.js';
import { startFineTune } from '../../src/train/finetune.js';
import { parseTrainSettings } from '../../src/train/settings.js';
import { resumeRun, train, type TrainerState } from '../../src/train/trainer.js';
import { FAMILY, ROOT } from '../helpers/fixtures.js';
import { smallText, tempDir } from './helpers.js';

/**
 * Fine-tuning the hybrids (`train --from` a Granite 4.0-H, Bamba, Nemotron-H, Jamba, Falcon-H1 or Zamba2 checkpoint): tiny random
 * checkpoints of fixtures/family, their vocabulary widened to a byte-level tokenizer's 257 ids, train a few
 * steps; every kind of parameter moves (attention, Mamba-2, MLP, router and experts), the checkpoint
 * written loads back with the logits it was saved with, under the source's tensor names and shapes, frozen
 * embeddings stay bit-identical (also after resuming), and transformers loads it with mamba-ts's logits within 1e-4
 * (scripts/fixtures/check_hf_load.py --family-patches: transformers patched as for the family fixtures'
 * references, per-group gated norm and no chunked-only dt clamp; run where a Python with transformers is at
 * hand: MAMBA_TS_PYTHON, default /work/venv/bin/python).
 */
const bk = cpu();
const FT = parseTrainSettings(
  {
    train: {
      seq_len: 16,
      batch_size: 2,
      lr: 5e-3,
      min_lr: 5e-3,
      warmup_steps: 1,
      weight_decay: 0.01,
      eval_every: 100,
      eval_tokens: 128,
      save_every: 100,
      seed: 5,
      val_fraction: 0.05,
    },
  },
  'fine-tune settings',
);
const PYTHON = process.env.MAMBA_TS_PYTHON ?? '/work/venv/bin/python';
const state = (dir: string): TrainerState =>
  JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as TrainerState;

/** The family fixture `name` with a byte-level tokenizer: vocabulary rows 101..256 added (small random values). */
async function withByteTokenizer(name: string, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  // the text edited in place, so the rest stays as transformers wrote it (0.0 stays a float)
  const text = readFileSync(join(FAMILY, name, 'config.json'), 'utf8');
  const V0 = (JSON.parse(text) as { vocab_size: number }).vocab_size,
    V = 257;
  let edited = text.replace(/"vocab_size": \d+/, `"vocab_size": ${V}`);
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id'])
    edited = edited.replace(new RegExp(`"${k}": \\d+`), `"${k}": 256`);
  writeFileSync(join(dir, 'config.json'), edited);
  const src = await openSafetensorsFile(join(FAMILY, name, 'model.safetensors'));
  const values = await readF32Tensors(join(FAMILY, name, 'model.safetensors'));
  let seed = 12345;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.1;
  const tensors = [...src.entries.values()].map((e) => {
    let data = values.get(e.name)!;
    let shape = [...e.shape];
    if (shape.length === 2 && shape[0] === V0) {
      const wide = new Float32Array(V * shape[1]);
      wide.set(data);
      for (let i = data.length; i < wide.length; i++) wide[i] = rnd();
      data = wide;
      shape = [V, shape[1]];
    }
    return { name: e.name, dtype: 'F32' as const, shape, data };
  });
  await src.close();
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
  const tok = new ByteLevelTokenizer({ specialTokens: ['<|endoftext|>'] });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tok.toTokenizerJson()));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tok.toTokenizerConfig()));
}

/** Parameters that must change in a training step, by architecture (one of each kind the model has). */
const MOVES: Record<string, string[]> = {
  'granite-hybrid-nope': [
    'model.layers.0.mamba.in_proj.weight',
    'model.layers.0.mamba.A_log',
    'model.layers.1.self_attn.q_proj.weight',
    'model.layers.1.self_attn.k_proj.weight',
    'model.layers.0.block_sparse_moe.router.layer.weight',
    'model.layers.0.block_sparse_moe.input_linear.weight',
    'model.layers.0.shared_mlp.output_linear.weight',
  ],
  bamba: ['model.layers.1.self_attn.v_proj.weight', 'model.layers.0.feed_forward.gate_proj.weight'],
  'nemotron-h': ['backbone.layers.3.mixer.o_proj.weight', 'backbone.layers.4.mixer.gate.weight'],
  jamba: [
    'model.layers.0.mamba.dt_layernorm.weight',
    'model.layers.0.mamba.x_proj.weight',
    'model.layers.1.feed_forward.router.weight',
    'model.layers.1.self_attn.q_proj.weight',
  ],
  // the multiplied weights (muP) and the others
  'falcon-h1': [
    'model.layers.0.mamba.in_proj.weight',
    'model.layers.0.self_attn.k_proj.weight',
    'model.layers.0.feed_forward.down_proj.weight',
    'model.layers.0.mamba.dt_bias',
  ],
  // the shared block (held once, trained by every call), a call's adapters and linear, the Mamba-2 layers
  zamba2: [
    'model.layers.0.shared_transformer.self_attn.q_proj.weight',
    'model.layers.0.shared_transformer.feed_forward.gate_up_proj.weight',
    'model.layers.0.shared_transformer.self_attn.linear_q_adapter_list.0.1.weight',
    'model.layers.0.linear.weight',
    'model.layers.1.mamba.in_proj.weight',
  ],
};

for (const name of Object.keys(MOVES))
  test(`fine-tuning the ${name} hybrid: trains, reloads with its logits, freezes embeddings, and transformers loads it`, async (t) => {
    const root = tempDir();
    const base = join(root, 'base');
    await withByteTokenizer(name, base);
    const data = smallText(root, 1);
    const source = await readF32Tensors(join(base, 'model.safetensors'));
    for (const freeze of [false, true]) {
      const out = join(root, freeze ? 'frozen' : 'full');
      const run = await startFineTune({
        fromDir: base,
        data,
        settings: FT,
        steps: 3,
        outDir: out,
        backend: bk,
        freezeEmbeddings: freeze,
      });
      await train(run);
      const st = state(out);
      assert.equal(st.step, 3);
      assert.ok(
        st.history.every((h) => Number.isFinite(h.loss) && h.gradNorm > 0),
        JSON.stringify(st.history),
      );
      assert.equal(readFileSync(join(out, 'config.json'), 'utf8'), readFileSync(join(base, 'config.json'), 'utf8'));
      // the source's tensor names and shapes (Granite's stacked experts (E, 2I, d), conv1d (c, 1, k))
      const cfg = run.lm.config as HybridConfig;
      const file = await openSafetensorsFile(join(out, 'model.safetensors'));
      const want = expectedHybridTensors(cfg).filter((e) => !e.optional || file.entries.has(e.name));
      assert.deepEqual([...file.entries.keys()].sort(), want.map((e) => e.name).sort());
      for (const e of want) assert.deepEqual(file.entries.get(e.name)!.shape, e.shape, e.name);
      await file.close();
      const w = await readF32Tensors(join(out, 'model.safetensors'));
      const changed = (n: string): boolean => !w.get(n)!.every((v, i) => v === source.get(n)![i]);
      for (const n of MOVES[name]) assert.ok(changed(n), `${n} trained`);
      const emb = [...w.keys()].find((n) => /embed/.test(n))!;
      assert.equal(changed(emb), !freeze, `${emb} ${freeze ? 'frozen' : 'trained'}`);
      // loaded back: the logits it was saved with
      const lm = await loadAnyLanguageModel(out);
      const ids = Int32Array.from({ length: 20 }, (_, i) => (i * 37) % 257);
      const before = noGrad(() => bk.readSync(run.lm.forward(bk.upload(ids, [2, 10], 'i32'))));
      assert.deepEqual(bk.readSync(lm.forward(bk.upload(ids, [2, 10], 'i32'))), before);
      if (freeze) {
        // resumed for one more step: the checkpoint's model trains on, embeddings still frozen
        await train(await resumeRun({ outDir: out, backend: bk, steps: 4 }));
        assert.equal(state(out).step, 4);
        const w2 = await readF32Tensors(join(out, 'model.safetensors'));
        assert.deepEqual(w2.get(emb), source.get(emb));
        assert.ok(!w2.get(MOVES[name][0])!.every((v, i) => v === w.get(MOVES[name][0])![i]), 'trained on');
      }
    }
    if (!existsSync(PYTHON)) {
      t.skip(`no Python with transformers at ${PYTHON} (set MAMBA_TS_PYTHON): transformers' load not checked`);
      return;
    }
    const py = spawnSync(
      PYTHON,
      [
        join(ROOT, 'scripts', 'fixtures', 'check_hf_load.py'),
        join(root, 'full'),
        '--device',
        'cpu',
        '--family-patches',
      ],
      { encoding: 'utf8' },
    );
    console.log(
      py.stdout
        .split('\n')
        .filter((l) => /logits|tokenizer/.test(l))
        .map((l) => `# ${l}`)
        .join('\n'),
    );
    assert.equal(py.status, 0, `${py.stdout}\n${py.stderr}`);
  });
