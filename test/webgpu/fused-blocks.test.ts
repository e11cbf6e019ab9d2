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
    // blocks: Mamba-2 (fused: 3 launches of 6), MLP (2 of 4), attention (its norm in [q; k; v]: 1 fewer),
    // MLP, Mamba-2, MLP; the final norm in lm_head (1 of 2): 3 + 2 + 1 + 2 + 3 + 2 + 1 = 14 fewer (from the
    // second token: the first one also makes the step's buffers). In q4 the attention block stays unfused
    // (q, k and v are not stacked in q4) and the MLP after it adds its pending output first (1 fewer): 3 + 2 + 0 + 1 + 3 + 2 + 1 = 12.
    const fewer = dtype === 'q4' ? 12 : 14;
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
