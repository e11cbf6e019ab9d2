import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensorsFile } from '../../src/io/node/safetensors-file.js';
import type { TensorToWrite } from '../../src/io/safetensors-writer.js';
import { parseHfMambaConfig, ConfigReader } from '../../src/models/config.js';
import { expectedMambaTensors } from '../../src/models/build-mamba.js';
import { f32ToHalf } from '../../src/tensor/dtype.js';
import { ROOT } from './fixtures.js';

/**
 * A small random Mamba checkpoint directory written like transformers writes one (config.json +
 * model.safetensors [+ the tiny BPE tokenizer of fixtures/tokenizer/tiny-bpe, 273 tokens]), with
 * switches to break it in the ways users' files break.
 */
export interface TinyModelOptions {
  config?: Record<string, unknown>;
  tokenizer?: boolean;
  /** Leave this tensor out. */
  drop?: string;
  /** Store this tensor with a wrong shape. */
  reshape?: { name: string; shape: number[] };
  /** Put a NaN (or Inf) into this tensor. */
  poison?: { name: string; value: number };
  /** Add a tensor the model does not have. */
  extra?: string;
  seed?: number;
  /** Store the matrices in this 16-bit format (default F32). */
  half?: 'F16' | 'BF16';
}

export const TINY_CONFIG = {
  architectures: ['MambaForCausalLM'],
  model_type: 'mamba',
  hidden_size: 16,
  num_hidden_layers: 2,
  state_size: 4,
  expand: 2,
  conv_kernel: 4,
  vocab_size: 280,
  use_bias: false,
  use_conv_bias: true,
  time_step_rank: 'auto',
  tie_word_embeddings: true,
  layer_norm_epsilon: 1e-5,
  eos_token_id: 0,
  bos_token_id: 0,
  pad_token_id: 0,
};

export async function makeTinyModel(o: TinyModelOptions = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mamba-ts-tiny-'));
  const raw = { ...TINY_CONFIG, ...o.config };
  await writeFile(join(dir, 'config.json'), JSON.stringify(raw, null, 2));
  const cfg = parseHfMambaConfig(new ConfigReader(raw, 'config.json'));
  let s = (o.seed ?? 7) >>> 0;
  const rnd = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
  const tensors: TensorToWrite[] = [];
  for (const e of expectedMambaTensors(cfg)) {
    if (e.optional || e.name === o.drop) continue;
    const shape = o.reshape?.name === e.name ? o.reshape.shape : [...e.shape];
    const n = shape.reduce((a, b) => a * b, 1);
    const scale = e.name.endsWith('A_log') ? 0 : e.matrix ? 1 / Math.sqrt(shape[shape.length - 1]) : 0.2;
    const data = Float32Array.from({ length: n }, () =>
      e.name.endsWith('A_log')
        ? Math.log(1 + 4 * (rnd() + 0.5))
        : (e.name.includes('norm') ? 1 : 0) + rnd() * 2 * scale,
    );
    if (o.poison?.name === e.name) data[n >> 1] = o.poison.value;
    if (o.half && e.matrix)
      tensors.push({ name: e.name, dtype: o.half, shape, data: f32ToHalf(data, o.half === 'F16' ? 'f16' : 'bf16') });
    else tensors.push({ name: e.name, dtype: 'F32', shape, data });
  }
  if (o.extra) tensors.push({ name: o.extra, dtype: 'F32', shape: [2], data: new Float32Array(2) });
  await writeSafetensorsFile(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  if (o.tokenizer !== false) {
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      await copyFile(join(ROOT, 'fixtures/tokenizer/tiny-bpe', f), join(dir, f));
  }
  await mkdir(dir, { recursive: true });
  return dir;
}
