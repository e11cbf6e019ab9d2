import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import type { TensorSource } from '../io/tensor-source.js';
import { MambaMixer } from '../mixers/mamba.js';
import type { Mixer } from '../mixers/mixer.js';
import { Mlp, type MlpNames } from '../mixers/mlp.js';
import { MixtureOfExperts } from '../mixers/moe.js';
import { Tensor } from '../tensor/tensor.js';
import { buildFalconH1, expectedFalconH1Tensors } from './build-falcon-h1.js';
import { buildZamba2, expectedZamba2Tensors } from './build-zamba2.js';
import type { HybridArch, HybridConfig, HybridMixerKind } from './config-hybrid.js';
import { attentionAt, loadedTensors, mamba2At } from './hybrid-parts.js';
import { LanguageModel, type Block } from './lm.js';
import { stackGateUp } from './stack-rows.js';
import { loadExpectedTensors, type ExpectedTensor, type WeightDType } from './weights.js';

/**
 * Builds the Mamba + attention hybrids (Granite 4.0-H, Bamba, Nemotron-H; Jamba's Mamba-1) from checkpoint tensors
 * under the Hub's names: every tensor's shape checked against the config, missing and unexpected
 * tensors refused. A decoder layer "mixer, then feed-forward" becomes two LanguageModel blocks (the
 * feed-forward is a stateless mixer), each with its own norm and Granite's residual multiplier.
 * Falcon-H1 (Mamba-2 and attention in parallel, muP multipliers) has its own builder: build-falcon-h1.ts.
 */

/** Where each architecture keeps its tensors. */
interface Layout {
  embeddings: string;
  normF: string;
  /** Norm before the mixer / before the feed-forward of layer i. */
  norm(i: number): string;
  ffnNorm(i: number): string;
  /** Prefix of layer i's mixer of that kind (ends with '.'). */
  mixer(i: number, kind: HybridMixerKind): string;
  /** Prefix of layer i's feed-forward parts. */
  ffn(i: number): { mlp: string; moe: string };
  /** An MoE layer's experts replace the MLP (Jamba), rather than adding to a shared MLP (Granite). */
  moeReplacesMlp?: boolean;
}

const LAYOUTS: Record<Exclude<HybridArch, 'falcon_h1' | 'zamba2'>, Layout> = {
  granitemoehybrid: {
    embeddings: 'model.embed_tokens.weight',
    normF: 'model.norm.weight',
    norm: (i) => `model.layers.${i}.input_layernorm.weight`,
    ffnNorm: (i) => `model.layers.${i}.post_attention_layernorm.weight`,
    mixer: (i, k) => `model.layers.${i}.${k === 'mamba2' ? 'mamba' : 'self_attn'}.`,
    ffn: (i) => ({ mlp: `model.layers.${i}.shared_mlp.`, moe: `model.layers.${i}.block_sparse_moe.` }),
  },
  bamba: {
    embeddings: 'model.embed_tokens.weight',
    normF: 'model.final_layernorm.weight',
    norm: (i) => `model.layers.${i}.input_layernorm.weight`,
    ffnNorm: (i) => `model.layers.${i}.pre_ff_layernorm.weight`,
    mixer: (i, k) => `model.layers.${i}.${k === 'mamba2' ? 'mamba' : 'self_attn'}.`,
    ffn: (i) => ({ mlp: `model.layers.${i}.feed_forward.`, moe: `model.layers.${i}.feed_forward.` }),
  },
  nemotron_h: {
    embeddings: 'backbone.embeddings.weight',
    normF: 'backbone.norm_f.weight',
    norm: (i) => `backbone.layers.${i}.norm.weight`,
    ffnNorm: (i) => `backbone.layers.${i}.norm.weight`,
    mixer: (i) => `backbone.layers.${i}.mixer.`,
    ffn: (i) => ({ mlp: `backbone.layers.${i}.mixer.`, moe: `backbone.layers.${i}.mixer.` }),
  },
  jamba: {
    embeddings: 'model.embed_tokens.weight',
    normF: 'model.final_layernorm.weight',
    norm: (i) => `model.layers.${i}.input_layernorm.weight`,
    ffnNorm: (i) => `model.layers.${i}.pre_ff_layernorm.weight`,
    mixer: (i, k) => `model.layers.${i}.${k === 'attention' ? 'self_attn' : 'mamba'}.`,
    ffn: (i) => ({ mlp: `model.layers.${i}.feed_forward.`, moe: `model.layers.${i}.feed_forward.` }),
    moeReplacesMlp: true,
  },
};

/** MLP tensor names of each architecture (Granite fuses gate and up into input_linear). */
function mlpNames(c: HybridConfig): MlpNames & { fused: boolean } {
  if (c.arch === 'granitemoehybrid') return { up: 'input_linear', gate: 'gate', down: 'output_linear', fused: true };
  return { up: 'up_proj', gate: 'gate_proj', down: 'down_proj', fused: false };
}

/** The tensors a checkpoint of this config holds, with their shapes. */
export function expectedHybridTensors(c: HybridConfig, wdtype: WeightDType = 'f32'): ExpectedTensor[] {
  if (c.arch === 'falcon_h1') return expectedFalconH1Tensors(c);
  if (c.arch === 'zamba2') return expectedZamba2Tensors(c);
  const L = LAYOUTS[c.arch];
  const d = c.dModel,
    V = c.vocabSize;
  const a = c.attention;
  const out: ExpectedTensor[] = [
    { name: L.embeddings, shape: [V, d], matrix: true, why: `vocab_size ${V} x hidden_size ${d}` },
  ];
  const vec = (name: string, n: number, why: string, optional = false): ExpectedTensor => ({
    name,
    shape: [n],
    matrix: false,
    why,
    ...(optional ? { optional } : {}),
  });
  const mat = (name: string, r: number, k: number, why: string): ExpectedTensor => ({
    name,
    shape: [r, k],
    matrix: true,
    why,
  });
  const mlp = (p: string, I: number, act: string, fused: boolean, bias: boolean): void => {
    const n = mlpNames(c);
    const gated = act === 'swiglu';
    out.push(mat(`${p}${n.up}.weight`, gated && fused ? 2 * I : I, d, `intermediate ${I}, hidden_size ${d}`));
    if (gated && !fused) out.push(mat(`${p}${n.gate}.weight`, I, d, `intermediate ${I}, hidden_size ${d}`));
    out.push(mat(`${p}${n.down}.weight`, d, I, `hidden_size ${d}, intermediate ${I}`));
    if (bias) {
      out.push(vec(`${p}${n.up}.bias`, gated && fused ? 2 * I : I, 'mlp_bias'));
      if (gated && !fused) out.push(vec(`${p}${n.gate}.bias`, I, 'mlp_bias'));
      out.push(vec(`${p}${n.down}.bias`, d, 'mlp_bias'));
    }
  };
  const moe = (p: string): void => {
    const e = c.moe!;
    const I = e.intermediate;
    if (c.arch === 'granitemoehybrid') {
      // routers stay f32 (like llama.cpp's): a rounded score can flip a near tie between experts
      out.push({
        ...mat(`${p}router.layer.weight`, e.experts, d, `num_local_experts ${e.experts}, hidden_size ${d}`),
        matrix: false,
      });
      // stacked experts: held as one matrix whose row blocks are the experts (views; q8 keeps them f32)
      out.push(
        {
          name: `${p}input_linear.weight`,
          shape: [e.experts, 2 * I, d],
          holdShape: [e.experts * 2 * I, d],
          matrix: wdtype !== 'q8',
          why: `num_local_experts ${e.experts}, 2 x intermediate_size ${I}, hidden_size ${d}`,
        },
        {
          name: `${p}output_linear.weight`,
          shape: [e.experts, d, I],
          holdShape: [e.experts * d, I],
          matrix: wdtype !== 'q8',
          why: `num_local_experts ${e.experts}, hidden_size ${d}, intermediate_size ${I}`,
        },
      );
    } else if (c.arch === 'jamba') {
      out.push({
        ...mat(`${p}router.weight`, e.experts, d, `num_experts ${e.experts}, hidden_size ${d}`),
        matrix: false,
      });
      for (let j = 0; j < e.experts; j++) mlp(`${p}experts.${j}.`, I, e.activation, false, false);
    } else {
      out.push({
        ...mat(`${p}gate.weight`, e.experts, d, `n_routed_experts ${e.experts}, hidden_size ${d}`),
        matrix: false,
      });
      out.push(vec(`${p}gate.e_score_correction_bias`, e.experts, `n_routed_experts ${e.experts}`));
      for (let j = 0; j < e.experts; j++) mlp(`${p}experts.${j}.`, I, e.activation, false, false);
      if (e.sharedIntermediate > 0) mlp(`${p}shared_experts.`, e.sharedIntermediate, e.activation, false, false);
    }
  };
  c.layers.forEach((layer, i) => {
    out.push(vec(L.norm(i), d, `hidden_size ${d}`));
    const p = L.mixer(i, layer.mixer);
    switch (layer.mixer) {
      case 'mamba2': {
        const m = c.mamba!;
        const conv = m.dInner + 2 * m.nGroups * m.dState;
        const W = 2 * m.dInner + 2 * m.nGroups * m.dState + m.nHeads;
        const h = m.nHeads;
        out.push(
          mat(
            `${p}in_proj.weight`,
            W,
            d,
            `2 x d_inner ${m.dInner} + 2 x n_groups ${m.nGroups} x d_state ${m.dState} + heads ${h}`,
          ),
          {
            name: `${p}conv1d.weight`,
            shape: [conv, 1, m.dConv],
            holdShape: [conv, m.dConv],
            matrix: false,
            why: `conv channels ${conv}, d_conv ${m.dConv}`,
          },
          vec(`${p}dt_bias`, h, `mamba heads ${h}`),
          vec(`${p}A_log`, h, `mamba heads ${h}`),
          vec(`${p}D`, h, `mamba heads ${h}`),
          vec(`${p}norm.weight`, m.dInner, `d_inner ${m.dInner}`),
          mat(`${p}out_proj.weight`, d, m.dInner, `hidden_size ${d}, d_inner ${m.dInner}`),
        );
        if (m.useConvBias) out.push(vec(`${p}conv1d.bias`, conv, `conv channels ${conv}`));
        if (m.useBias)
          out.push(vec(`${p}in_proj.bias`, W, 'mamba_proj_bias'), vec(`${p}out_proj.bias`, d, 'mamba_proj_bias'));
        break;
      }
      case 'mamba1':
        out.push(...expectedMamba1Tensors(c, p));
        break;
      case 'attention': {
        const q = a.heads * a.headDim,
          kv = a.kvHeads * a.headDim;
        const why = `heads ${a.heads} / kv heads ${a.kvHeads} x head_dim ${a.headDim}, hidden_size ${d}`;
        out.push(
          mat(`${p}q_proj.weight`, q, d, why),
          mat(`${p}k_proj.weight`, kv, d, why),
          mat(`${p}v_proj.weight`, kv, d, why),
          mat(`${p}o_proj.weight`, d, q, why),
        );
        if (a.bias)
          out.push(vec(`${p}q_proj.bias`, q, why), vec(`${p}k_proj.bias`, kv, why), vec(`${p}v_proj.bias`, kv, why));
        if (a.outBias) out.push(vec(`${p}o_proj.bias`, d, why));
        break;
      }
      case 'mlp':
        mlp(p, c.mlp!.intermediate, c.mlp!.activation, mlpNames(c).fused, c.mlp!.bias);
        break;
      case 'moe':
        moe(p);
        break;
    }
    if (layer.ffn) {
      out.push(vec(L.ffnNorm(i), d, `hidden_size ${d}`));
      const f = L.ffn(i);
      if (c.mlp && !(layer.ffn === 'moe' && L.moeReplacesMlp))
        mlp(f.mlp, c.mlp.intermediate, c.mlp.activation, mlpNames(c).fused, c.mlp.bias);
      if (layer.ffn === 'moe') moe(f.moe);
    }
  });
  out.push(vec(L.normF, d, `hidden_size ${d}`));
  out.push({ ...mat('lm_head.weight', V, d, `vocab_size ${V} x hidden_size ${d}`), optional: c.tieEmbeddings });
  return out;
}

/** A Jamba Mamba-1 layer's tensors under prefix p: Mamba-1's, and the weights of its Δ/B/C norms. */
function expectedMamba1Tensors(c: HybridConfig, p: string): ExpectedTensor[] {
  const { dInner: e, dState: n, dConv: k, dtRank: r, useBias, useConvBias } = c.mamba1!;
  const d = c.dModel;
  const vec = (name: string, len: number, why: string): ExpectedTensor => ({ name, shape: [len], matrix: false, why });
  const out: ExpectedTensor[] = [
    { name: `${p}in_proj.weight`, shape: [2 * e, d], matrix: true, why: `2 x d_inner ${e}, hidden_size ${d}` },
    {
      name: `${p}conv1d.weight`,
      shape: [e, 1, k],
      holdShape: [e, k],
      matrix: false,
      why: `d_inner ${e}, mamba_d_conv ${k}`,
    },
    {
      name: `${p}x_proj.weight`,
      shape: [r + 2 * n, e],
      matrix: true,
      why: `mamba_dt_rank ${r} + 2 x mamba_d_state ${n}, d_inner ${e}`,
    },
    { name: `${p}dt_proj.weight`, shape: [e, r], matrix: true, why: `d_inner ${e}, mamba_dt_rank ${r}` },
    vec(`${p}dt_proj.bias`, e, `d_inner ${e}`),
    { name: `${p}A_log`, shape: [e, n], matrix: false, why: `d_inner ${e}, mamba_d_state ${n}` },
    vec(`${p}D`, e, `d_inner ${e}`),
    { name: `${p}out_proj.weight`, shape: [d, e], matrix: true, why: `hidden_size ${d}, d_inner ${e}` },
    vec(`${p}dt_layernorm.weight`, r, `mamba_dt_rank ${r}`),
    vec(`${p}b_layernorm.weight`, n, `mamba_d_state ${n}`),
    vec(`${p}c_layernorm.weight`, n, `mamba_d_state ${n}`),
  ];
  if (useConvBias) out.push(vec(`${p}conv1d.bias`, e, `mamba_conv_bias, d_inner ${e}`));
  if (useBias)
    out.push(vec(`${p}in_proj.bias`, 2 * e, 'mamba_proj_bias'), vec(`${p}out_proj.bias`, d, 'mamba_proj_bias'));
  return out;
}

/** Rows [start, start + count) of a matrix, as a view (an expert inside a stacked tensor). */
function rowBlock(t: Tensor, start: number, count: number): Tensor {
  return new Tensor(t.backend, t.storage, [count, t.cols], t.dtype, t.offset + start * t.ld, t.ld, t.base ?? t);
}

/** Refuses a backend that lacks a kernel the hybrid needs, before anything is loaded: never a wrong result. */
export function checkHybridBackend(c: HybridConfig, backend: Backend): void {
  const missing: string[] = [];
  if (c.layers.some((l) => l.mixer === 'attention' || l.mixer === 'mamba2+attention' || l.shared)) {
    if (!backend.attention) missing.push('attention');
    if (c.attention.rotaryDim > 0 && !backend.rotary) missing.push('rotary');
  }
  if (c.moe && !backend.moeRoute) missing.push('moeRoute');
  if (c.moe && !backend.hostView && !backend.moeAccumulate) missing.push('moeAccumulate');
  if (missing.length)
    fail(
      'UNSUPPORTED',
      `${c.arch} (a Mamba + attention hybrid) cannot run on the ${backend.name} backend: it lacks the ` +
        `${missing.join(', ')} kernel${missing.length > 1 ? 's' : ''}`,
      { backend: backend.name, arch: c.arch, missing },
    );
}

/** Builds a hybrid LanguageModel from checkpoint tensors. */
export async function buildHybrid(
  c: HybridConfig,
  src: TensorSource,
  backend: Backend,
  wdtype: WeightDType = 'f32',
): Promise<LanguageModel<HybridConfig>> {
  checkHybridBackend(c, backend);
  if (c.arch === 'falcon_h1') return buildFalconH1(c, src, backend, wdtype);
  if (c.arch === 'zamba2') return buildZamba2(c, src, backend, wdtype);
  const got = await loadExpectedTensors(src, expectedHybridTensors(c, wdtype), c, () => [], backend, wdtype);
  const t = loadedTensors(got, c.arch);
  const { g, o } = t;
  const L = LAYOUTS[c.arch];
  const names = mlpNames(c);
  const mlpOf = (p: string, act: NonNullable<HybridConfig['mlp']>['activation']): Mlp =>
    new Mlp(
      backend,
      // a separate gate and up in one storage, one product per token where the dtype allows (stack-rows.ts)
      stackGateUp(backend, {
        up: g(`${p}${names.up}.weight`),
        gate: act === 'swiglu' && !names.fused ? g(`${p}${names.gate}.weight`) : null,
        down: g(`${p}${names.down}.weight`),
        upBias: o(`${p}${names.up}.bias`),
        gateBias: o(`${p}${names.gate}.bias`),
        downBias: o(`${p}${names.down}.bias`),
      }),
      act,
      names,
    );
  /** p: the MoE's tensors' prefix; names in parameters() are relative to `p` less `rel` (Granite: the layer). */
  const moeOf = (p: string, shared: Mlp | null, rel: string, sharedName: string): MixtureOfExperts => {
    const e = c.moe!;
    const opts = {
      topK: e.topK,
      routing: e.routing,
      normTopk: e.normTopk,
      scaling: e.scaling,
      nGroup: e.nGroup,
      topkGroup: e.topkGroup,
    };
    if (c.arch === 'granitemoehybrid') {
      const up = g(`${p}input_linear.weight`),
        down = g(`${p}output_linear.weight`);
      const I = e.intermediate,
        d = c.dModel;
      const experts = Array.from(
        { length: e.experts },
        (_, j) =>
          new Mlp(
            backend,
            {
              up: rowBlock(up, j * 2 * I, 2 * I),
              gate: null,
              down: rowBlock(down, j * d, d),
              upBias: null,
              gateBias: null,
              downBias: null,
            },
            'swiglu',
          ),
      );
      const stacked = new Map([
        [`${rel}input_linear.weight`, up],
        [`${rel}output_linear.weight`, down],
      ]);
      return new MixtureOfExperts(
        backend,
        { router: g(`${p}router.layer.weight`), correctionBias: null },
        experts,
        shared,
        opts,
        { router: `${rel}router.layer.weight`, correctionBias: '', expert: null, shared: sharedName },
        stacked,
      );
    }
    if (c.arch === 'jamba') {
      // softmax over all experts, top-k, not renormalised; no shared expert; names relative to the layer
      const experts = Array.from({ length: e.experts }, (_, j) => mlpOf(`${p}experts.${j}.`, e.activation));
      return new MixtureOfExperts(
        backend,
        { router: g(`${p}router.weight`), correctionBias: null },
        experts,
        null,
        opts,
        { router: `${rel}router.weight`, correctionBias: '', expert: (j) => `${rel}experts.${j}`, shared: '' },
      );
    }
    const experts = Array.from({ length: e.experts }, (_, j) => mlpOf(`${p}experts.${j}.`, e.activation));
    const sharedExpert = e.sharedIntermediate > 0 ? mlpOf(`${p}shared_experts.`, e.activation) : null;
    return new MixtureOfExperts(
      backend,
      { router: g(`${p}gate.weight`), correctionBias: o(`${p}gate.e_score_correction_bias`) },
      experts,
      sharedExpert,
      opts,
      {
        router: 'gate.weight',
        correctionBias: 'gate.e_score_correction_bias',
        expert: (j) => `experts.${j}`,
        shared: 'shared_experts',
      },
    );
  };
  const scale = c.residualMultiplier;
  const blocks: Block[] = [];
  c.layers.forEach((layer, i) => {
    const p = L.mixer(i, layer.mixer);
    let mixer: Mixer;
    switch (layer.mixer) {
      case 'mamba2':
        mixer = mamba2At(backend, c, t, p, { normEps: c.normEps });
        break;
      case 'mamba1': {
        const m1 = c.mamba1!;
        mixer = new MambaMixer(
          backend,
          {
            inProj: g(`${p}in_proj.weight`),
            inProjBias: o(`${p}in_proj.bias`),
            convWeight: g(`${p}conv1d.weight`),
            convBias: o(`${p}conv1d.bias`),
            xProj: g(`${p}x_proj.weight`),
            dtProj: g(`${p}dt_proj.weight`),
            dtProjBias: g(`${p}dt_proj.bias`),
            ALog: g(`${p}A_log`),
            D: g(`${p}D`),
            outProj: g(`${p}out_proj.weight`),
            outProjBias: o(`${p}out_proj.bias`),
            dtBCNormWeights: {
              dt: g(`${p}dt_layernorm.weight`),
              b: g(`${p}b_layernorm.weight`),
              c: g(`${p}c_layernorm.weight`),
            },
          },
          { d: c.dModel, e: m1.dInner, n: m1.dState, k: m1.dConv, r: m1.dtRank, dtBCNormEps: m1.dtBCNormEps },
        );
        break;
      }
      case 'attention':
        mixer = attentionAt(backend, c, t, p);
        break;
      case 'mlp':
        mixer = mlpOf(p, c.mlp!.activation);
        break;
      case 'moe':
        mixer = moeOf(p, null, '', '');
        break;
      case 'mamba2+attention':
        return fail(
          'CONFIG_MISMATCH',
          `${c.arch}: a parallel mamba2+attention layer belongs to falcon_h1 (internal error)`,
        );
    }
    blocks.push({ norm: g(L.norm(i)), mixer, scale, names: { norm: L.norm(i), mixer: p } });
    if (layer.ffn) {
      const f = L.ffn(i);
      const shared = c.mlp && !(layer.ffn === 'moe' && L.moeReplacesMlp) ? mlpOf(f.mlp, c.mlp.activation) : null;
      // Granite: moe(x) + shared_mlp(x); the block's names are relative to the layer
      const layerPrefix = `model.layers.${i}.`;
      const ffn: Mixer =
        layer.ffn === 'moe'
          ? moeOf(f.moe, shared, f.moe.slice(layerPrefix.length), f.mlp.slice(layerPrefix.length, -1))
          : shared!;
      const prefix = layer.ffn === 'moe' ? layerPrefix : f.mlp;
      blocks.push({ norm: g(L.ffnNorm(i)), mixer: ffn, scale, names: { norm: L.ffnNorm(i), mixer: prefix } });
    }
  });
  const emb = g(L.embeddings);
  const head = c.tieEmbeddings ? emb : g('lm_head.weight');
  return new LanguageModel<HybridConfig>(c, backend, emb, blocks, g(L.normF), head, {
    embeddingScale: c.embeddingMultiplier,
    logitsDivisor: c.logitsScaling,
    names: { embeddings: L.embeddings, normF: L.normF, lmHead: 'lm_head.weight' },
  });
}
