import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { join } from 'node:path';
import type { Backend } from '../../src/backend/backend.js';
import { checkHybridBackend } from '../../src/models/build-hybrid.js';
import { parseConfig } from '../../src/models/config.js';
import { parseHybridConfig } from '../../src/models/config-hybrid.js';
import { FAMILY } from '../helpers/fixtures.js';

/** The hybrids' config.json: both vocabularies of Granite, Nemotron-H's pattern, and clear errors. */
const raw = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(FAMILY, name, 'config.json'), 'utf8')) as Record<string, unknown>;

const code =
  (c: string, re?: RegExp) =>
  (e: Error & { code?: string }): boolean =>
    e.code === c && (!re || re.test(e.message));

test('granitemoehybrid: the Hub and transformers 5 layer_types read alike; multipliers; MoE + shared MLP', () => {
  const hub = parseHybridConfig(raw('granite-hybrid-nope'));
  const t5 = parseHybridConfig(raw('granite-hybrid-bf16-sharded'));
  assert.deepEqual(hub.layers, t5.layers);
  assert.deepEqual(
    hub.layers.map((l) => l.mixer),
    ['mamba2', 'attention', 'mamba2'],
  );
  assert.equal(hub.layers[0].ffn, 'moe');
  assert.equal(hub.attention.scale, 0.3);
  assert.equal(hub.attention.rotaryDim, 0);
  assert.equal(hub.attention.kvHeads, 2);
  assert.equal(hub.mamba!.normGroupSize, hub.mamba!.dInner / 2); // per group
  assert.deepEqual([hub.embeddingMultiplier, hub.residualMultiplier, hub.logitsScaling], [6, 0.22, 2.5]);
  const dense = parseHybridConfig(raw('granite-hybrid-rope-dense'));
  assert.equal(dense.moe, null);
  assert.equal(dense.layers[0].ffn, 'mlp');
  assert.equal(dense.attention.rotaryDim, dense.attention.headDim);
  assert.equal(dense.attention.ropeTheta, 5000);
});

test('bamba: partial rotary as transformers computes it (odd int(dh·f) rotates the next even width)', () => {
  const c = parseHybridConfig(raw('bamba'));
  assert.equal(c.attention.rotaryDim, 6); // head_dim 10 x 0.5 = 5 -> 3 frequencies
  assert.ok(Math.abs(c.attention.ropeTheta ** (-2 / 6) - 10000 ** (-2 / 5)) < 1e-15);
});

test('nemotron_h: hybrid_override_pattern and layers_block_type read alike', () => {
  const j = raw('nemotron-h');
  const a = parseHybridConfig(j);
  assert.deepEqual(
    a.layers.map((l) => l.mixer),
    ['mamba2', 'mlp', 'mamba2', 'attention', 'moe'],
  );
  const { hybrid_override_pattern: _, ...rest } = j;
  const b = parseHybridConfig({ ...rest, layers_block_type: ['mamba', 'mlp', 'mamba', 'attention', 'moe'] });
  assert.deepEqual(b.layers, a.layers);
  assert.equal(a.moe?.routing, 'sigmoid');
  assert.equal(a.moe?.scaling, 1.7);
});

test('an unknown model_type or an unsupported option is a clear error naming what is supported', () => {
  assert.throws(
    () => parseHybridConfig({ ...raw('bamba'), model_type: 'nonesuch' }),
    code('UNSUPPORTED', /granitemoehybrid, bamba, nemotron_h/),
  );
  assert.throws(() => parseConfig({ model_type: 'nonesuch' }), code('UNSUPPORTED', /granitemoehybrid/));
  assert.throws(() => parseConfig(raw('bamba')), code('UNSUPPORTED', /loadHybridModel/));
  assert.throws(
    () => parseHybridConfig({ ...raw('bamba'), rope_parameters: { rope_type: 'yarn', rope_theta: 1e4 } }),
    code('UNSUPPORTED', /rope_type "yarn"/),
  );
  assert.throws(
    () => parseHybridConfig({ ...raw('nemotron-h'), moe_latent_size: 64 }),
    code('UNSUPPORTED', /moe_latent_size/),
  );
  assert.throws(
    () => parseHybridConfig({ ...raw('nemotron-h'), hybrid_override_pattern: 'M-X*E' }),
    code('UNSUPPORTED', /M, \*, -, E/),
  );
  assert.throws(
    () => parseHybridConfig({ ...raw('granite-hybrid-nope'), layer_types: ['mamba', 'conv', 'mamba'] }),
    code('UNSUPPORTED', /layer_types\[1\]/),
  );
  assert.throws(
    () => parseHybridConfig({ ...raw('granite-hybrid-nope'), position_embedding_type: 'alibi' }),
    code('UNSUPPORTED', /position_embedding_type/),
  );
  assert.throws(
    () => parseHybridConfig({ ...raw('granite-hybrid-nope'), num_key_value_heads: 3 }),
    code('CORRUPT_FILE', /num_key_value_heads 3/),
  );
});

test('a backend without the kernels a hybrid needs is refused before loading, naming them', () => {
  const c = parseHybridConfig(raw('granite-hybrid-rope-dense'));
  const bare = { name: 'bare' } as unknown as Backend;
  assert.throws(
    () => checkHybridBackend(c, bare),
    code('UNSUPPORTED', /bare backend: it lacks the attention, rotary kernels/),
  );
  const moe = parseHybridConfig(raw('nemotron-h'));
  assert.throws(() => checkHybridBackend(moe, bare), code('UNSUPPORTED', /attention, moeRoute, moeAccumulate/));
});
