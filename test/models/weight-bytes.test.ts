import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { parseConfig } from '../../src/models/config.js';
import { weightBytes } from '../../src/models/weight-bytes.js';
import type { WeightDType } from '../../src/models/weights.js';
import { fixtureModel, PARITY, ROOT } from '../helpers/fixture-model.js';

/**
 * weightBytes (models/weight-bytes.ts): the memory a model's weights take in each format, from its
 * config alone; equal to what loading really allocates; and a 7B model (falcon-mamba-7b's shapes) in
 * q4 under 5 GB.
 */
const backends: CpuBackend[] = [];
after(() => {
  for (const b of backends) b.dispose();
});

/** tiiuae/falcon-mamba-7b's shapes (its config.json), as a Mamba-1 config: the RMS norms it adds on B, C
 * and dt are weightless, so its weights are these. */
function falconMamba7b() {
  const base = JSON.parse(readFileSync(join(ROOT, 'models/default/config.json'), 'utf8'));
  return parseConfig({
    ...base,
    hidden_size: 4096,
    intermediate_size: 8192,
    num_hidden_layers: 64,
    vocab_size: 65024,
    state_size: 16,
    expand: 2,
    time_step_rank: 256,
    conv_kernel: 4,
    use_bias: false,
    use_conv_bias: true,
    tie_word_embeddings: false,
  });
}

test('a 7B model (falcon-mamba-7b shapes, untied head) takes under 5 GB of weights in q4', () => {
  const c = falconMamba7b();
  // by hand: 18 bytes a block of 32 (16 of nibbles, an f16 scale) for every matrix (all widths are
  // multiples of 32 here), f32 vectors
  const q4 = (rows: number, cols: number): number => (rows * cols * 18) / 32;
  const layer =
    q4(2 * 8192, 4096) + // in_proj
    q4(256 + 32, 8192) + // x_proj
    q4(8192, 256) + // dt_proj
    q4(4096, 8192) + // out_proj
    4 * (4096 + 8192 * 4 + 8192 + 8192 + 8192 * 16 + 8192); // norm, conv weight and bias, dt bias, A_log, D
  const want = 64 * layer + 2 * q4(65024, 4096) + 4 * 4096;
  assert.equal(want, 4_133_240_832);
  assert.equal(weightBytes(c, 'q4'), want);
  assert.ok(weightBytes(c, 'q4') < 5e9, `${weightBytes(c, 'q4')} bytes`);
  // the other formats, for scale: f32 29.1 GB, bf16 14.6 GB, q8 8.2 GB
  const params = 7_272_665_088;
  assert.equal(weightBytes(c, 'f32'), 4 * params);
  assert.ok(weightBytes(c, 'bf16') > 2 * params && weightBytes(c, 'bf16') < 2.01 * params); // vectors stay f32
  assert.ok(weightBytes(c, 'q8') > weightBytes(c, 'q4') && weightBytes(c, 'q8') < 8.5e9);
  const gb = (d: WeightDType): string => `${d} ${(weightBytes(c, d) / 1e9).toFixed(2)} GB`;
  const formats: WeightDType[] = ['q4', 'q8', 'bf16', 'f32'];
  process.stdout.write(`# falcon-mamba-7b shapes: ${formats.map(gb).join(', ')}\n`);
});

test('weightBytes equals the bytes loading allocates, in every format (odd widths, tied and untied)', async () => {
  for (const name of ['mamba1-tied', 'mamba1-untied', 'mamba2-g2-untied']) {
    const c = parseConfig(JSON.parse(readFileSync(join(PARITY, name, 'config.json'), 'utf8')));
    for (const dtype of ['f32', 'f16', 'bf16', 'q8', 'q4'] as WeightDType[]) {
      const bk = new CpuBackend({ kernels: 'ts' });
      backends.push(bk);
      const model = await fixtureModel(name, bk, dtype);
      let held = 0;
      for (const t of model.parameters().values()) held += (t.storage as ArrayBufferView).byteLength;
      assert.equal(weightBytes(c, dtype), held, `${name} ${dtype}`);
    }
  }
});
