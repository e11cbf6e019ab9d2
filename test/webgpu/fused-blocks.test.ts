import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import type { TensorEntry, TensorSource } from '../../src/io/tensor-source.js';
import { Rng } from '../../src/mixers/init.js';
import { buildHybrid, expectedHybridTensors } from '../../src/models/build-hybrid.js';
import { parseHybridConfig, type HybridConfig } from '../../src/models/config-hybrid.js';
import type { LanguageModel, LmConfig } from '../../src/models/lm.js';
import type { WeightDType } from '../../src/models/weights.js';
import { graniteConfigJson } from '../../bench/granite-random.js';
import { assertClose } from '../helpers/compare.js';
import { disposeGpu, requireAdapter, unfused } from '../helpers/webgpu.js';

/**
 * A Granite 4.0-H-layout hybrid's decode step on WebGPU with its blocks fused (Mixer.blockStep over
 * Backend.fusedLinear: Mamba-2 in three launches, the SwiGLU MLP in two, attention's norm in its [q; k; v]
 * product and its residual add in o_proj, the final norm in lm_head) against
 * the same model unfused (fuseNorm off) and against the CPU reference. The transformers fixtures have two
 * groups in Mamba-2's norm (which stays unfused), so this model has one group, as Granite 4.0-H 1B has, and
 * a residual multiplier, an embedding multiplier and a logits divisor; random norms, D and dt_bias.
 */
after(disposeGpu);
const ref = new CpuBackend({ kernels: 'ts' });

const config: HybridConfig = parseHybridConfig({
  ...graniteConfigJson({
    dModel: 64,
    layerTypes: ['mamba', 'attention', 'mamba'],
    vocab: 67,
    kvHeads: 2,
    dState: 16,
    headDim: 16,
  }),
  residual_multiplier: 0.22,
  embedding_multiplier: 1.5,
  logits_scaling: 2.5,
});

function source(c: HybridConfig): TensorSource {
  const entries = new Map<string, TensorEntry>();
  for (const e of expectedHybridTensors(c)) {
    if (e.optional) continue;
    entries.set(e.name, {
      name: e.name,
      dtype: 'F32',
      shape: e.shape,
      byteLength: 4 * e.shape.reduce((a, b) => a * b, 1),
    });
  }
  return {
    description: 'random one-group Granite hybrid',
    entries,
    metadata: {},
    async read(name: string): Promise<Uint8Array> {
      const e = entries.get(name)!;
      const n = e.byteLength / 4;
      const rng = new Rng(name.length * 31 + n);
      const v = new Float32Array(n);
      const s = 1 / Math.sqrt(e.shape[e.shape.length - 1]);
      for (let i = 0; i < n; i++) {
        const r = rng.normal();
        v[i] = /norm\.weight$|\.D$/.test(name)
          ? 1 + 0.3 * r
          : name.endsWith('dt_bias')
            ? -3 + r
            : name.endsWith('A_log')
              ? 0.5 + 0.3 * r
              : r * s;
      }
      return new Uint8Array(v.buffer);
    },
    async close(): Promise<void> {},
  };
}

/** Logits of `tokens` steps after a prompt, and the dispatches of each step (WebGPU). */
async function steps(
  m: LanguageModel<LmConfig>,
  bk: Backend,
  tokens: number[],
): Promise<{ logits: Float32Array[]; dispatches: number[] }> {
  const state = m.initState(1);
  const prompt = bk.upload(Int32Array.from([3, 14, 15, 9, 26, 5]), [1, 6], 'i32');
  await bk.read(m.forward(prompt, { state, lastOnly: true }));
  const logits: Float32Array[] = [];
  const dispatches: number[] = [];
  const stats = (bk as { d?: { stats: { dispatches: number } } }).d?.stats;
  for (const t of tokens) {
    const before = stats?.dispatches ?? 0;
    const l = m.stepIds([t], state);
    dispatches.push((stats?.dispatches ?? 0) - before);
    logits.push((await bk.read(l)) as Float32Array);
  }
  state.dispose();
  return { logits, dispatches };
}

const TOKENS = [7, 60, 2, 33, 33, 41];

for (const dtype of ['f32', 'q4'] as WeightDType[])
  test(`one-group hybrid (${dtype}) on WebGPU: fused decode blocks equal the unfused step, with fewer launches`, async (t) => {
    const g = await requireAdapter(t);
    if (!g) return;
    const model = await buildHybrid(config, source(config), g, dtype);
    const fused = await steps(model, g, TOKENS);
    const plain = await unfused(g, () => steps(model, g, TOKENS));
    // blocks: Mamba-2 (fused: 3 launches of 6), MLP (2 of 4), attention (its norm in [q; k; v], or in q, k
    // and v each in q4, where they are not stacked: 1 fewer), MLP, Mamba-2, MLP; the final norm in lm_head
    // (1 of 2): 3 + 2 + 1 + 2 + 3 + 2 + 1 = 14 fewer (from the second token: the first one also makes the
    // step's buffers)
    const fewer = 14;
    fused.dispatches.forEach((n, i) => {
      if (i > 0) assert.equal(plain.dispatches[i] - n, fewer, `token ${i}: ${n} vs ${plain.dispatches[i]} launches`);
    });
    fused.logits.forEach((l, i) => assertClose(l, plain.logits[i], `token ${i}: fused vs unfused logits`, 1e-4, 2e-5));
    if (dtype === 'f32') {
      const cm = await buildHybrid(config, source(config), ref, dtype);
      const c = await steps(cm, ref, TOKENS);
      fused.logits.forEach((l, i) =>
        assertClose(l, c.logits[i], `token ${i}: fused WebGPU vs CPU reference`, 1e-4, 1e-5),
      );
    }
    for (const p of model.parameters().values()) p.dispose();
  });

/**
 * Falcon-H1's parallel block (attention and Mamba-2 reading one rmsnorm(residual), both added into it)
 * fused as ParallelMixers.blockStep does it: every part's reading launches before any part's write. One
 * group (Falcon-H1 0.5B's layout), muP multipliers folded into the weights as the loader does, with and
 * without Mamba-2's gated norm weight (`mamba_rms_norm`), RoPE.
 */
function falconConfig(rmsNorm: boolean): HybridConfig {
  return parseHybridConfig({
    model_type: 'falcon_h1',
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    intermediate_size: 96,
    mamba_d_ssm: 64,
    mamba_n_heads: 4,
    mamba_d_head: 16,
    mamba_d_state: 16,
    mamba_n_groups: 1,
    mamba_d_conv: 4,
    mamba_expand: 2,
    mamba_chunk_size: 4,
    mamba_conv_bias: true,
    mamba_proj_bias: false,
    mamba_rms_norm: rmsNorm,
    mamba_norm_before_gate: false,
    attention_bias: false,
    mlp_bias: false,
    projectors_bias: false,
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    embedding_multiplier: 1.5,
    lm_head_multiplier: 0.5,
    attention_in_multiplier: 1.2,
    attention_out_multiplier: 0.8,
    key_multiplier: 0.7,
    ssm_in_multiplier: 1.1,
    ssm_out_multiplier: 0.9,
    ssm_multipliers: [0.9, 1.1, 1.2, 0.8, 1.05],
    mlp_multipliers: [1.1, 0.9],
    vocab_size: 67,
    tie_word_embeddings: false,
    max_position_embeddings: 256,
  });
}

for (const rmsNorm of [false, true])
  for (const dtype of ['f32', 'q4'] as WeightDType[])
    test(`Falcon-H1 parallel block (${dtype}, mamba_rms_norm ${rmsNorm}) on WebGPU: fused decode equals the unfused step, with fewer launches`, async (t) => {
      const g = await requireAdapter(t);
      if (!g) return;
      const c = falconConfig(rmsNorm);
      const model = await buildHybrid(c, source(c), g, dtype);
      const fused = await steps(model, g, TOKENS);
      const plain = await unfused(g, () => steps(model, g, TOKENS));
      // per layer: the parallel block's norm in in_proj and in [q; k; v] (or q, k and v each in q4), the conv
      // step in in_proj, the gate (and gated norm) in out_proj: 3 fewer (of 11, 13 in q4; o_proj adds into
      // the residual in both); the MLP's norm in [gate; up] (or gate and up each), silu(gate)·up in down_proj,
      // the residual add in down_proj: 2 fewer (of 4, 5 in q4); then the final norm in lm_head: 2 × 5 + 1
      const fewer = 11;
      fused.dispatches.forEach((n, i) => {
        if (i > 0) assert.equal(plain.dispatches[i] - n, fewer, `token ${i}: ${n} vs ${plain.dispatches[i]} launches`);
      });
      t.diagnostic(`${dtype}: ${fused.dispatches[1]} launches a token fused, ${plain.dispatches[1]} unfused`);
      fused.logits.forEach((l, i) =>
        assertClose(l, plain.logits[i], `token ${i}: fused vs unfused logits`, 1e-4, 2e-5),
      );
      if (dtype === 'f32') {
        const cm = await buildHybrid(c, source(c), ref, dtype);
        const cs = await steps(cm, ref, TOKENS);
        fused.logits.forEach((l, i) =>
          assertClose(l, cs.logits[i], `token ${i}: fused WebGPU vs CPU reference`, 1e-4, 1e-5),
        );
      }
      for (const p of model.parameters().values()) p.dispose();
    });
