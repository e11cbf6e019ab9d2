import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import type { TensorSource } from '../io/tensor-source.js';
import { Mlp } from '../mixers/mlp.js';
import { ParallelMixers } from '../mixers/parallel.js';
import type { FalconH1Multipliers } from './config-falcon-h1.js';
import { type HybridConfig, mamba2Of } from './config-hybrid.js';
import { LanguageModel, type Block } from './lm.js';
import { scaledSource, type TensorScale } from './scaled-source.js';
import { loadExpectedTensors, type ExpectedTensor, type WeightDType } from './weights.js';
import { attentionAt, loadedTensors, mamba2At } from './hybrid-parts.js';
import { stackGateUp } from './stack-rows.js';

/**
 * Builds Falcon-H1 (`falcon_h1`, config-falcon-h1.ts) from checkpoint tensors under the Hub's names,
 * every shape checked against the config. A decoder layer is two LanguageModel blocks:
 *   input_layernorm → ParallelMixers { mamba: Mamba2Mixer, self_attn: CausalSelfAttention } (summed)
 *   pre_ff_layernorm → SwiGLU Mlp (feed_forward.gate_proj / up_proj / down_proj)
 * The muP multipliers are folded into the weights as they are read (scaled-source.ts), where the model
 * multiplies a weight's product by a constant, so they cost nothing per token:
 *   in_proj row r   · ssm_in · ssm_multipliers[part of r]   (its bias · the part's multiplier)
 *   out_proj        · ssm_out                               q_proj, v_proj · attention_in
 *   k_proj          · attention_in · key_multiplier          (its bias · key_multiplier)
 *   o_proj          · attention_out                         gate_proj · mlp gate, down_proj · mlp down
 * Biases see the multipliers applied after their product, not those applied to the input. The embedding
 * and lm_head multipliers stay multipliers (LmOptions): tied, the two are one matrix.
 */

const EMBEDDINGS = 'model.embed_tokens.weight';
const NORM_F = 'model.final_layernorm.weight';
const layer = (i: number): string => `model.layers.${i}.`;

/** The tensors a Falcon-H1 checkpoint of this config holds, with their shapes. */
export function expectedFalconH1Tensors(c: HybridConfig): ExpectedTensor[] {
  const d = c.dModel,
    V = c.vocabSize;
  const m = mamba2Of(c),
    a = c.attention,
    I = c.mlp?.intermediate ?? 0;
  const conv = m.dInner + 2 * m.nGroups * m.dState;
  const W = 2 * m.dInner + 2 * m.nGroups * m.dState + m.nHeads;
  const vec = (name: string, n: number, why: string): ExpectedTensor => ({ name, shape: [n], matrix: false, why });
  const mat = (name: string, r: number, k: number, why: string): ExpectedTensor => ({
    name,
    shape: [r, k],
    matrix: true,
    why,
  });
  const out: ExpectedTensor[] = [mat(EMBEDDINGS, V, d, `vocab_size ${V} x hidden_size ${d}`)];
  for (let i = 0; i < c.nLayer; i++) {
    const p = layer(i);
    const mp = `${p}mamba.`,
      ap = `${p}self_attn.`,
      fp = `${p}feed_forward.`;
    out.push(
      vec(`${p}input_layernorm.weight`, d, `hidden_size ${d}`),
      vec(`${p}pre_ff_layernorm.weight`, d, `hidden_size ${d}`),
    );
    out.push(
      mat(
        `${mp}in_proj.weight`,
        W,
        d,
        `2 x mamba width ${m.dInner} + 2 x n_groups ${m.nGroups} x d_state ${m.dState} + heads ${m.nHeads}`,
      ),
      {
        name: `${mp}conv1d.weight`,
        shape: [conv, 1, m.dConv],
        holdShape: [conv, m.dConv],
        matrix: false,
        why: `conv channels ${conv}, d_conv ${m.dConv}`,
      },
      vec(`${mp}dt_bias`, m.nHeads, `mamba_n_heads ${m.nHeads}`),
      vec(`${mp}A_log`, m.nHeads, `mamba_n_heads ${m.nHeads}`),
      vec(`${mp}D`, m.nHeads, `mamba_n_heads ${m.nHeads}`),
      mat(`${mp}out_proj.weight`, d, m.dInner, `hidden_size ${d}, mamba width ${m.dInner}`),
    );
    if (m.rmsNorm !== false) out.push(vec(`${mp}norm.weight`, m.dInner, `mamba_rms_norm, mamba width ${m.dInner}`));
    if (m.useConvBias) out.push(vec(`${mp}conv1d.bias`, conv, `mamba_conv_bias, conv channels ${conv}`));
    if (m.useBias) out.push(vec(`${mp}in_proj.bias`, W, 'mamba_proj_bias'));
    if (m.outBias) out.push(vec(`${mp}out_proj.bias`, d, 'projectors_bias'));
    const q = a.heads * a.headDim,
      kv = a.kvHeads * a.headDim;
    const why = `heads ${a.heads} / kv heads ${a.kvHeads} x head_dim ${a.headDim}, hidden_size ${d}`;
    out.push(
      mat(`${ap}q_proj.weight`, q, d, why),
      mat(`${ap}k_proj.weight`, kv, d, why),
      mat(`${ap}v_proj.weight`, kv, d, why),
      mat(`${ap}o_proj.weight`, d, q, why),
    );
    if (a.bias)
      out.push(vec(`${ap}q_proj.bias`, q, why), vec(`${ap}k_proj.bias`, kv, why), vec(`${ap}v_proj.bias`, kv, why));
    if (a.outBias) out.push(vec(`${ap}o_proj.bias`, d, why));
    const mwhy = `intermediate_size ${I}, hidden_size ${d}`;
    out.push(
      mat(`${fp}gate_proj.weight`, I, d, mwhy),
      mat(`${fp}up_proj.weight`, I, d, mwhy),
      mat(`${fp}down_proj.weight`, d, I, mwhy),
    );
    if (c.mlp?.bias)
      out.push(
        vec(`${fp}gate_proj.bias`, I, 'mlp_bias'),
        vec(`${fp}up_proj.bias`, I, 'mlp_bias'),
        vec(`${fp}down_proj.bias`, d, 'mlp_bias'),
      );
  }
  out.push(vec(NORM_F, d, `hidden_size ${d}`));
  out.push({ ...mat('lm_head.weight', V, d, `vocab_size ${V} x hidden_size ${d}`), optional: c.tieEmbeddings });
  return out;
}

/** What each weight is multiplied by as it is read (the class comment's table); factors of 1 left out. */
export function falconH1WeightScales(c: HybridConfig, mu: FalconH1Multipliers): Map<string, TensorScale> {
  const m = mamba2Of(c);
  const gn = m.nGroups * m.dState;
  // in_proj's rows: z (e), x (e), B (g·n), C (g·n), dt (h)
  const widths = [m.dInner, m.dInner, gn, gn, m.nHeads];
  const parts = new Float32Array(widths.reduce((s, w) => s + w, 0));
  let r = 0;
  widths.forEach((w, j) => {
    parts.fill(mu.ssm[j], r, r + w);
    r += w;
  });
  const s = new Map<string, TensorScale>();
  const put = (name: string, v: TensorScale): void => {
    if (typeof v !== 'number' || v !== 1) s.set(name, v);
  };
  for (let i = 0; i < c.nLayer; i++) {
    const p = layer(i);
    put(
      `${p}mamba.in_proj.weight`,
      parts.map((v) => v * mu.ssmIn),
    );
    put(`${p}mamba.in_proj.bias`, parts);
    put(`${p}mamba.out_proj.weight`, mu.ssmOut);
    put(`${p}mamba.out_proj.bias`, mu.ssmOut);
    put(`${p}self_attn.q_proj.weight`, mu.attentionIn);
    put(`${p}self_attn.k_proj.weight`, mu.attentionIn * mu.key);
    put(`${p}self_attn.k_proj.bias`, mu.key);
    put(`${p}self_attn.v_proj.weight`, mu.attentionIn);
    put(`${p}self_attn.o_proj.weight`, mu.attentionOut);
    put(`${p}self_attn.o_proj.bias`, mu.attentionOut);
    put(`${p}feed_forward.gate_proj.weight`, mu.mlpGate);
    put(`${p}feed_forward.gate_proj.bias`, mu.mlpGate);
    put(`${p}feed_forward.down_proj.weight`, mu.mlpDown);
    put(`${p}feed_forward.down_proj.bias`, mu.mlpDown);
  }
  return s;
}

/** Builds a Falcon-H1 LanguageModel from checkpoint tensors (the backend already checked by the caller). */
export async function buildFalconH1(
  c: HybridConfig,
  src: TensorSource,
  backend: Backend,
  wdtype: WeightDType = 'f32',
): Promise<LanguageModel<HybridConfig>> {
  const mu = c.muP;
  if (c.arch !== 'falcon_h1' || !mu)
    fail('CONFIG_MISMATCH', `falcon_h1 builder: given a ${c.arch} config (internal error)`);
  const m = mamba2Of(c);
  if (m.rmsNorm === false && src.entries.has(`${layer(0)}mamba.norm.weight`))
    fail(
      'CONFIG_MISMATCH',
      `${src.description}: config.json says mamba_rms_norm false (Mamba output y · silu(z), no norm), but the ` +
        `checkpoint holds ${layer(0)}mamba.norm.weight; set mamba_rms_norm to what the model was trained with`,
    );
  const folded = scaledSource(src, falconH1WeightScales(c, mu), wdtype === 'auto');
  const got = await loadExpectedTensors(folded, expectedFalconH1Tensors(c), c, () => [], backend, wdtype);
  const t = loadedTensors(got, 'falcon_h1');
  const { g, o } = t;
  const blocks: Block[] = [];
  for (let i = 0; i < c.nLayer; i++) {
    const p = layer(i);
    const mp = `${p}mamba.`,
      ap = `${p}self_attn.`,
      fp = `${p}feed_forward.`;
    const mamba = mamba2At(backend, c, t, mp, {
      normEps: c.normEps,
      gatedNorm: m.rmsNorm !== false,
      normBeforeGate: m.normBeforeGate ?? false,
    });
    const attention = attentionAt(backend, c, t, ap);
    const mlp = new Mlp(
      backend,
      // gate and up in one storage, one product per token where the dtype allows (stack-rows.ts)
      stackGateUp(backend, {
        up: g(`${fp}up_proj.weight`),
        gate: g(`${fp}gate_proj.weight`),
        down: g(`${fp}down_proj.weight`),
        upBias: o(`${fp}up_proj.bias`),
        gateBias: o(`${fp}gate_proj.bias`),
        downBias: o(`${fp}down_proj.bias`),
      }),
      'swiglu',
    );
    const norm = `${p}input_layernorm.weight`,
      ffnNorm = `${p}pre_ff_layernorm.weight`;
    blocks.push({
      norm: g(norm),
      mixer: new ParallelMixers(backend, { mamba, self_attn: attention }),
      names: { norm, mixer: p },
    });
    blocks.push({ norm: g(ffnNorm), mixer: mlp, names: { norm: ffnNorm, mixer: fp } });
  }
  const emb = g(EMBEDDINGS);
  return new LanguageModel<HybridConfig>(
    c,
    backend,
    emb,
    blocks,
    g(NORM_F),
    c.tieEmbeddings ? emb : g('lm_head.weight'),
    {
      embeddingScale: c.embeddingMultiplier,
      logitsDivisor: c.logitsScaling,
      names: { embeddings: EMBEDDINGS, normF: NORM_F, lmHead: 'lm_head.weight' },
    },
  );
}
