import type { Backend } from '../backend/backend.js';
import type { TensorSource } from '../io/tensor-source.js';
import { Mamba2Mixer } from '../mixers/mamba2.js';
import type { Tensor } from '../tensor/tensor.js';
import { mambaAliases } from './build-mamba.js';
import { mamba2ConvDim, type Mamba2Config } from './config.js';
import { LanguageModel, type Block } from './lm.js';
import { loadExpectedTensors, type ExpectedTensor, type WeightDType } from './weights.js';

/**
 * Checkpoint tensors of a Mamba-2 model with their shapes as the config implies (transformers' names;
 * the original mamba_ssm layout differs only in `backbone.embedding.weight`, see mambaAliases).
 * The `why` strings use transformers' key names, with mamba_ssm's in the messages of the other layout.
 */
export function expectedMamba2Tensors(c: Mamba2Config): ExpectedTensor[] {
  const { dModel: d, dInner: e, dState: n, dConv: k, nHeads: h, nGroups: g, vocabSize: V } = c;
  const orig = c.layout === 'mamba_ssm';
  const key = (hf: string, ssm: string): string => (orig ? ssm : hf);
  const conv = mamba2ConvDim(c);
  const W = 2 * e + 2 * g * n + h;
  const dims = {
    d: `${key('hidden_size', 'd_model')} ${d}`,
    e: `d_inner ${e} (${key('expand', 'expand')} x ${key('hidden_size', 'd_model')})`,
    h: `${key('num_heads', 'd_inner / headdim')} ${h}`,
    conv: `d_inner ${e} + 2 x ${key('n_groups', 'ngroups')} ${g} x ${key('state_size', 'd_state')} ${n}`,
    V: `${key('vocab_size', 'vocab_size (padded to pad_vocab_size_multiple)')} ${V}`,
  };
  const out: ExpectedTensor[] = [
    { name: 'backbone.embeddings.weight', shape: [V, d], matrix: true, why: `${dims.V} x ${dims.d}` },
  ];
  for (let i = 0; i < c.nLayer; i++) {
    const p = `backbone.layers.${i}.`;
    const m = `${p}mixer.`;
    out.push(
      { name: `${p}norm.weight`, shape: [d], matrix: false, why: dims.d },
      {
        name: `${m}in_proj.weight`,
        shape: [W, d],
        matrix: true,
        why: `2 x ${dims.e} + 2 x ${key('n_groups', 'ngroups')} ${g} x ${key('state_size', 'd_state')} ${n} + ${dims.h} = ${W}, ${dims.d}`,
      },
      {
        name: `${m}conv1d.weight`,
        shape: [conv, 1, k],
        holdShape: [conv, k],
        matrix: false,
        why: `${dims.conv} = ${conv}, ${key('conv_kernel', 'd_conv')} ${k}`,
      },
      { name: `${m}dt_bias`, shape: [h], matrix: false, why: dims.h },
      { name: `${m}A_log`, shape: [h], matrix: false, why: dims.h },
      { name: `${m}D`, shape: [h], matrix: false, why: dims.h },
      { name: `${m}norm.weight`, shape: [e], matrix: false, why: dims.e },
      { name: `${m}out_proj.weight`, shape: [d, e], matrix: true, why: `${dims.d}, ${dims.e}` },
    );
    if (c.useBias) {
      out.push(
        { name: `${m}in_proj.bias`, shape: [W], matrix: false, why: `${key('use_bias', 'bias')}, in_proj rows ${W}` },
        { name: `${m}out_proj.bias`, shape: [d], matrix: false, why: `${key('use_bias', 'bias')}, ${dims.d}` },
      );
    }
    if (c.useConvBias)
      out.push({
        name: `${m}conv1d.bias`,
        shape: [conv],
        matrix: false,
        why: `${key('use_conv_bias', 'conv_bias')}, ${dims.conv}`,
      });
  }
  out.push({ name: 'backbone.norm_f.weight', shape: [d], matrix: false, why: dims.d });
  out.push({
    name: 'lm_head.weight',
    shape: [V, d],
    matrix: true,
    why: `${dims.V} x ${dims.d}`,
    optional: c.tieEmbeddings,
  });
  return out;
}

/** Builds a Mamba-2 LanguageModel from checkpoint tensors. */
export async function buildMamba2(
  c: Mamba2Config,
  src: TensorSource,
  backend: Backend,
  wdtype: WeightDType = 'f32',
): Promise<LanguageModel> {
  const got = await loadExpectedTensors(src, expectedMamba2Tensors(c), c, mambaAliases, backend, wdtype);
  const g = (name: string): Tensor => got.get(name)!;
  const o = (name: string): Tensor | null => got.get(name) ?? null;
  const dims = {
    d: c.dModel,
    h: c.nHeads,
    p: c.headDim,
    g: c.nGroups,
    n: c.dState,
    k: c.dConv,
    chunkSize: c.chunkSize,
    timeStepLimit: c.timeStepLimit,
    normEps: c.normEps,
    normGroupSize: c.normGroupSize,
    normBeforeGate: c.normBeforeGate,
  };
  const blocks: Block[] = [];
  for (let i = 0; i < c.nLayer; i++) {
    const m = `backbone.layers.${i}.mixer.`;
    blocks.push({
      norm: g(`backbone.layers.${i}.norm.weight`),
      mixer: new Mamba2Mixer(
        backend,
        {
          inProj: g(`${m}in_proj.weight`),
          inProjBias: o(`${m}in_proj.bias`),
          convWeight: g(`${m}conv1d.weight`),
          convBias: o(`${m}conv1d.bias`),
          dtBias: g(`${m}dt_bias`),
          ALog: g(`${m}A_log`),
          D: g(`${m}D`),
          normWeight: g(`${m}norm.weight`),
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
