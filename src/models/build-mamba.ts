import type { Backend } from '../backend/backend.js';
import type { TensorSource } from '../io/tensor-source.js';
import { MambaMixer } from '../mixers/mamba.js';
import type { Tensor } from '../tensor/tensor.js';
import type { MambaConfig } from './config.js';
import { LanguageModel, type Block } from './lm.js';
import { loadExpectedTensors, type ExpectedTensor, type WeightDType } from './weights.js';

/** Checkpoint tensors of a Mamba-1 model with their shapes as the config implies (HF names). */
export function expectedMambaTensors(c: MambaConfig): ExpectedTensor[] {
  const { dModel: d, dInner: e, dState: n, dConv: k, dtRank: r, vocabSize: V } = c;
  const out: ExpectedTensor[] = [
    { name: 'backbone.embeddings.weight', shape: [V, d], matrix: true, why: `vocab_size ${V} x hidden_size ${d}` },
  ];
  for (let i = 0; i < c.nLayer; i++) {
    const p = `backbone.layers.${i}.`;
    const m = `${p}mixer.`;
    out.push(
      { name: `${p}norm.weight`, shape: [d], matrix: false, why: `hidden_size ${d}` },
      {
        name: `${m}in_proj.weight`,
        shape: [2 * e, d],
        matrix: true,
        why: `2 x intermediate_size ${e}, hidden_size ${d}`,
      },
      {
        name: `${m}conv1d.weight`,
        shape: [e, 1, k],
        holdShape: [e, k],
        matrix: false,
        why: `intermediate_size ${e}, conv_kernel ${k}`,
      },
      {
        name: `${m}x_proj.weight`,
        shape: [r + 2 * n, e],
        matrix: true,
        why: `time_step_rank ${r} + 2 x state_size ${n}, intermediate_size ${e}`,
      },
      { name: `${m}dt_proj.weight`, shape: [e, r], matrix: true, why: `intermediate_size ${e}, time_step_rank ${r}` },
      { name: `${m}dt_proj.bias`, shape: [e], matrix: false, why: `intermediate_size ${e}` },
      { name: `${m}A_log`, shape: [e, n], matrix: false, why: `intermediate_size ${e}, state_size ${n}` },
      { name: `${m}D`, shape: [e], matrix: false, why: `intermediate_size ${e}` },
      { name: `${m}out_proj.weight`, shape: [d, e], matrix: true, why: `hidden_size ${d}, intermediate_size ${e}` },
    );
    if (c.useBias) {
      out.push(
        { name: `${m}in_proj.bias`, shape: [2 * e], matrix: false, why: `use_bias, 2 x intermediate_size ${e}` },
        { name: `${m}out_proj.bias`, shape: [d], matrix: false, why: `use_bias, hidden_size ${d}` },
      );
    }
    if (c.useConvBias)
      out.push({ name: `${m}conv1d.bias`, shape: [e], matrix: false, why: `use_conv_bias, intermediate_size ${e}` });
  }
  out.push({ name: 'backbone.norm_f.weight', shape: [d], matrix: false, why: `hidden_size ${d}` });
  out.push({
    name: 'lm_head.weight',
    shape: [V, d],
    matrix: true,
    why: `vocab_size ${V} x hidden_size ${d}`,
    optional: c.tieEmbeddings,
  });
  return out;
}

/** Names the same tensor has in other layouts (original mamba_ssm: `backbone.embedding.weight`). */
export function mambaAliases(name: string): string[] {
  if (name === 'backbone.embeddings.weight') return ['backbone.embedding.weight'];
  return [];
}

/** Builds a Mamba-1 LanguageModel from checkpoint tensors. */
export async function buildMamba(
  c: MambaConfig,
  src: TensorSource,
  backend: Backend,
  wdtype: WeightDType = 'f32',
): Promise<LanguageModel> {
  const got = await loadExpectedTensors(src, expectedMambaTensors(c), c, mambaAliases, backend, wdtype);
  const g = (name: string): Tensor => got.get(name)!;
  const o = (name: string): Tensor | null => got.get(name) ?? null;
  const dims = { d: c.dModel, e: c.dInner, n: c.dState, k: c.dConv, r: c.dtRank, dtBCNormEps: c.dtBCNormEps };
  const blocks: Block[] = [];
  for (let i = 0; i < c.nLayer; i++) {
    const m = `backbone.layers.${i}.mixer.`;
    blocks.push({
      norm: g(`backbone.layers.${i}.norm.weight`),
      mixer: new MambaMixer(
        backend,
        {
          inProj: g(`${m}in_proj.weight`),
          inProjBias: o(`${m}in_proj.bias`),
          convWeight: g(`${m}conv1d.weight`),
          convBias: o(`${m}conv1d.bias`),
          xProj: g(`${m}x_proj.weight`),
          dtProj: g(`${m}dt_proj.weight`),
          dtProjBias: g(`${m}dt_proj.bias`),
          ALog: g(`${m}A_log`),
          D: g(`${m}D`),
          outProj: g(`${m}out_proj.weight`),
          outProjBias: o(`${m}out_proj.bias`),
        },
        dims,
      ),
    });
  }
  const emb = g('backbone.embeddings.weight');
  const head = c.tieEmbeddings ? emb : g('lm_head.weight');
  return new LanguageModel(c, backend, emb, blocks, g('backbone.norm_f.weight'), head);
}
