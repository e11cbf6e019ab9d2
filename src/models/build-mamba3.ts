import type { Backend } from '../backend/backend.js';
import type { TensorSource } from '../io/tensor-source.js';
import { Mamba3Mixer } from '../mixers/mamba3.js';
import type { Tensor } from '../tensor/tensor.js';
import { mambaAliases } from './build-mamba.js';
import { mamba3InProjRows, type Mamba3Config } from './config.js';
import { LanguageModel, type Block } from './lm.js';
import { loadExpectedTensors, type ExpectedTensor, type WeightDType } from './weights.js';

/**
 * Checkpoint tensors of a Mamba-3 model (mamba_ssm's MambaLMHeadModel with ssm_cfg.layer "Mamba3")
 * with the shapes the config implies. Names as the other architectures' (transformers' embedding name;
 * mambaAliases finds the original `backbone.embedding.weight`).
 */
export function expectedMamba3Tensors(c: Mamba3Config): ExpectedTensor[] {
  const { dModel: d, dInner: e, dState: n, nHeads: h, headDim: p, nGroups: g, mimoRank: R, vocabSize: V } = c;
  const W = mamba3InProjRows(c);
  const dims = {
    d: `d_model ${d}`,
    e: `d_inner ${e} (expand x d_model)`,
    h: `heads ${h} (d_inner / headdim)`,
    n: `d_state ${n}`,
    hRn: `heads ${h}, mimo_rank ${R}, d_state ${n}`,
    hRp: `heads ${h}, mimo_rank ${R}, headdim ${p}`,
  };
  const out: ExpectedTensor[] = [
    { name: 'backbone.embeddings.weight', shape: [V, d], matrix: true, why: `vocab_size (padded) ${V} x ${dims.d}` },
  ];
  for (let i = 0; i < c.nLayer; i++) {
    const b = `backbone.layers.${i}.`;
    const m = `${b}mixer.`;
    out.push(
      { name: `${b}norm.weight`, shape: [d], matrix: false, why: dims.d },
      {
        name: `${m}in_proj.weight`,
        shape: [W, d],
        matrix: true,
        why: `2 x ${dims.e} + 2 x mimo_rank ${R} x ngroups ${g} x ${dims.n} + 3 x ${dims.h} + rope angles ${c.numRopeAngles} = ${W}, ${dims.d}`,
      },
      { name: `${m}dt_bias`, shape: [h], matrix: false, why: dims.h },
      { name: `${m}B_bias`, shape: [h, R, n], matrix: false, why: dims.hRn },
      { name: `${m}C_bias`, shape: [h, R, n], matrix: false, why: dims.hRn },
      { name: `${m}B_norm.weight`, shape: [n], matrix: false, why: dims.n },
      { name: `${m}C_norm.weight`, shape: [n], matrix: false, why: dims.n },
      { name: `${m}D`, shape: [h], matrix: false, why: dims.h },
      { name: `${m}out_proj.weight`, shape: [d, e], matrix: true, why: `${dims.d}, ${dims.e}` },
    );
    if (c.isMimo) {
      for (const k of ['mimo_x', 'mimo_z', 'mimo_o'])
        out.push({ name: `${m}${k}`, shape: [h, R, p], matrix: false, why: `is_mimo: ${dims.hRp}` });
    }
    if (c.isOutprojNorm)
      out.push({ name: `${m}norm.weight`, shape: [e], matrix: false, why: `is_outproj_norm: ${dims.e}` });
  }
  out.push({ name: 'backbone.norm_f.weight', shape: [d], matrix: false, why: dims.d });
  out.push({
    name: 'lm_head.weight',
    shape: [V, d],
    matrix: true,
    why: `vocab_size (padded) ${V} x ${dims.d}`,
    optional: c.tieEmbeddings,
  });
  return out;
}

/** Builds a Mamba-3 LanguageModel from checkpoint tensors. */
export async function buildMamba3(
  c: Mamba3Config,
  src: TensorSource,
  backend: Backend,
  wdtype: WeightDType = 'f32',
): Promise<LanguageModel> {
  const got = await loadExpectedTensors(src, expectedMamba3Tensors(c), c, mambaAliases, backend, wdtype);
  const g = (name: string): Tensor => got.get(name)!;
  const o = (name: string): Tensor | null => got.get(name) ?? null;
  const dims = {
    d: c.dModel,
    h: c.nHeads,
    p: c.headDim,
    n: c.dState,
    g: c.nGroups,
    R: c.mimoRank,
    S: c.numRopeAngles,
    aFloor: c.aFloor,
    // mamba_ssm: the MIMO kernels pair dims (i, i + n/2), the SISO ones (2i, 2i + 1).
    rotateHalves: c.isMimo,
    eps: c.normEps,
  };
  const blocks: Block[] = [];
  for (let i = 0; i < c.nLayer; i++) {
    const m = `backbone.layers.${i}.mixer.`;
    blocks.push({
      norm: g(`backbone.layers.${i}.norm.weight`),
      mixer: new Mamba3Mixer(
        backend,
        {
          inProj: g(`${m}in_proj.weight`),
          dtBias: g(`${m}dt_bias`),
          BBias: g(`${m}B_bias`),
          CBias: g(`${m}C_bias`),
          BNorm: g(`${m}B_norm.weight`),
          CNorm: g(`${m}C_norm.weight`),
          D: g(`${m}D`),
          mimoX: o(`${m}mimo_x`),
          mimoZ: o(`${m}mimo_z`),
          mimoO: o(`${m}mimo_o`),
          normWeight: o(`${m}norm.weight`),
          outProj: g(`${m}out_proj.weight`),
        },
        dims,
      ),
    });
  }
  const emb = g('backbone.embeddings.weight');
  const head = c.tieEmbeddings ? emb : g('lm_head.weight');
  return new LanguageModel(c, backend, emb, blocks, g('backbone.norm_f.weight'), head);
}
