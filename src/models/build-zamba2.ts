import type { Backend } from '../backend/backend.js';
import { fail, fmtShape } from '../errors.js';
import type { TensorSource } from '../io/tensor-source.js';
import { LowRankAdapter } from '../mixers/lora.js';
import { Zamba2HybridLayer } from '../mixers/zamba2-layer.js';
import { SharedBlockCall, type SharedBlockWeights } from '../mixers/zamba2-shared-block.js';
import { sameShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { type HybridConfig, mamba2Of } from './config-hybrid.js';
import type { Zamba2Shared } from './config-zamba2.js';
import type { Block } from './lm.js';
import { loadExpectedTensors, type ExpectedTensor, type WeightDType } from './weights.js';
import { Zamba2LanguageModel } from './zamba2-lm.js';
import { loadedTensors, mamba2At } from './hybrid-parts.js';
import { stackRows } from './stack-rows.js';

/**
 * Builds Zamba2 (config-zamba2.ts) from checkpoint tensors under transformers' names, every shape checked
 * against the config. Layer i is `model.layers.i.{input_layernorm, mamba}` (a Mamba layer) or
 * `model.layers.i.{linear, mamba_decoder.{input_layernorm, mamba}, shared_transformer}` (a hybrid layer).
 * Each shared block is stored once, under the first hybrid layer that calls it, together with the
 * adapters of every call of it (`*_adapter_list.{j}`, j the call's position in hybrid_layer_ids), as
 * transformers ties and saves them; it is loaded once and every call references it. A checkpoint that
 * also stores a copy under a later caller (an exporter that did not deduplicate tied weights) has the
 * copies' shapes checked and not loaded: transformers ties them to the first too.
 */

const E = 'model.embed_tokens.weight';
const NORM_F = 'model.final_layernorm.weight';

/** Where layer i's Mamba-2 decoder lives. */
function mambaPrefix(c: HybridConfig, i: number): { norm: string; mixer: string } {
  return c.layers[i].shared
    ? {
        norm: `model.layers.${i}.mamba_decoder.input_layernorm.weight`,
        mixer: `model.layers.${i}.mamba_decoder.mamba.`,
      }
    : { norm: `model.layers.${i}.input_layernorm.weight`, mixer: `model.layers.${i}.mamba.` };
}

const shared = (owner: number): string => `model.layers.${owner}.shared_transformer.`;

/** The adapter names of call j: [down, up] of q, k, v (attention adapters) and of gate_up. */
function adapterNames(owner: number, j: number): { q: string[]; k: string[]; v: string[]; gateUp: string[] } {
  const p = shared(owner);
  const two = (s: string): string[] => [`${s}.${j}.0.weight`, `${s}.${j}.1.weight`];
  return {
    q: two(`${p}self_attn.linear_q_adapter_list`),
    k: two(`${p}self_attn.linear_k_adapter_list`),
    v: two(`${p}self_attn.linear_v_adapter_list`),
    gateUp: two(`${p}feed_forward.gate_up_proj_adapter_list`),
  };
}

function zamba2Of(c: HybridConfig): Zamba2Shared {
  if (!c.zamba2) fail('CONFIG_MISMATCH', 'zamba2 builder: the config has no shared-block sizes (internal error)');
  return c.zamba2;
}

/** The tensors a Zamba2 checkpoint holds, with their shapes. */
export function expectedZamba2Tensors(c: HybridConfig): ExpectedTensor[] {
  const z = zamba2Of(c);
  const d = c.dModel,
    V = c.vocabSize,
    m = mamba2Of(c),
    a = c.attention;
  const W = 2 * m.dInner + 2 * m.nGroups * m.dState + m.nHeads;
  const conv = m.dInner + 2 * m.nGroups * m.dState;
  const w2 = z.inputWidth,
    I = z.mlpIntermediate,
    r = z.adapterRank;
  const q = a.heads * a.headDim,
    kv = a.kvHeads * a.headDim;
  const vec = (name: string, n: number, why: string): ExpectedTensor => ({ name, shape: [n], matrix: false, why });
  const mat = (name: string, rows: number, cols: number, why: string): ExpectedTensor => ({
    name,
    shape: [rows, cols],
    matrix: true,
    why,
  });
  const out: ExpectedTensor[] = [mat(E, V, d, `vocab_size ${V} x hidden_size ${d}`)];
  c.layers.forEach((layer, i) => {
    const { norm, mixer: p } = mambaPrefix(c, i);
    out.push(
      vec(norm, d, `hidden_size ${d}`),
      mat(
        `${p}in_proj.weight`,
        W,
        d,
        `2 x d_inner ${m.dInner} + 2 x mamba_ngroups ${m.nGroups} x mamba_d_state ${m.dState} + n_mamba_heads ${m.nHeads}`,
      ),
      {
        name: `${p}conv1d.weight`,
        shape: [conv, 1, m.dConv],
        holdShape: [conv, m.dConv],
        matrix: false,
        why: `conv channels ${conv}, mamba_d_conv ${m.dConv}`,
      },
      vec(`${p}conv1d.bias`, conv, `conv channels ${conv}`),
      vec(`${p}dt_bias`, m.nHeads, `n_mamba_heads ${m.nHeads}`),
      vec(`${p}A_log`, m.nHeads, `n_mamba_heads ${m.nHeads}`),
      vec(`${p}D`, m.nHeads, `n_mamba_heads ${m.nHeads}`),
      vec(`${p}norm.weight`, m.dInner, `d_inner ${m.dInner}`),
      mat(`${p}out_proj.weight`, d, m.dInner, `hidden_size ${d}, d_inner ${m.dInner}`),
    );
    if (m.useBias)
      out.push(vec(`${p}in_proj.bias`, W, 'add_bias_linear'), vec(`${p}out_proj.bias`, d, 'add_bias_linear'));
    const call = layer.shared;
    if (!call) return;
    out.push(mat(`model.layers.${i}.linear.weight`, d, d, `hidden_size ${d}`));
    const s = shared(call.owner);
    if (call.owner === i) {
      const why = `num_attention_heads ${a.heads} / num_key_value_heads ${a.kvHeads} x head_dim ${a.headDim}, 2 x hidden_size ${w2}`;
      out.push(
        vec(`${s}input_layernorm.weight`, w2, `2 x hidden_size ${w2}`),
        mat(`${s}self_attn.q_proj.weight`, q, w2, why),
        mat(`${s}self_attn.k_proj.weight`, kv, w2, why),
        mat(`${s}self_attn.v_proj.weight`, kv, w2, why),
        mat(`${s}self_attn.o_proj.weight`, d, q, `hidden_size ${d}, ${why}`),
        vec(`${s}pre_ff_layernorm.weight`, d, `hidden_size ${d}`),
        mat(`${s}feed_forward.gate_up_proj.weight`, 2 * I, d, `2 x intermediate_size ${I}, hidden_size ${d}`),
        mat(`${s}feed_forward.down_proj.weight`, d, I, `hidden_size ${d}, intermediate_size ${I}`),
      );
      if (z.mlpBias)
        out.push(
          vec(`${s}feed_forward.gate_up_proj.bias`, 2 * I, 'add_bias_linear'),
          vec(`${s}feed_forward.down_proj.bias`, d, 'add_bias_linear'),
        );
    }
    // this call's adapters, stored with the block
    const n = adapterNames(call.owner, call.call);
    const why = `adapter_rank ${r}`;
    if (z.attentionAdapters)
      for (const [down, up] of [n.q, n.k, n.v])
        out.push(mat(down, r, w2, `${why}, 2 x hidden_size ${w2}`), mat(up, w2, r, `2 x hidden_size ${w2}, ${why}`));
    out.push(
      mat(n.gateUp[0], r, d, `${why}, hidden_size ${d}`),
      mat(n.gateUp[1], 2 * I, r, `2 x intermediate_size ${I}, ${why}`),
    );
  });
  out.push(vec(NORM_F, d, `hidden_size ${d}`));
  out.push({ ...mat('lm_head.weight', V, d, `vocab_size ${V} x hidden_size ${d}`), optional: c.tieEmbeddings });
  return out;
}

/**
 * The source without copies of a shared block stored under a later caller (checked against the
 * first's shapes): what transformers ties to the first.
 */
function withoutTiedCopies(c: HybridConfig, src: TensorSource): TensorSource {
  const copies = new Map<string, string>(); // the copy's prefix -> the owner's
  for (const [i, l] of c.layers.entries())
    if (l.shared && l.shared.owner !== i) copies.set(shared(i), shared(l.shared.owner));
  if (copies.size === 0) return src;
  const entries = new Map(src.entries);
  for (const [name, e] of src.entries) {
    const prefix = [...copies.keys()].find((p) => name.startsWith(p));
    if (prefix === undefined) continue;
    const first = src.entries.get(copies.get(prefix) + name.slice(prefix.length));
    if (!first || !sameShape(first.shape, e.shape))
      fail(
        'CONFIG_MISMATCH',
        `${src.description}: tensor ${name} ${fmtShape(e.shape)} belongs to a shared block, whose weights are stored ` +
          `under ${copies.get(prefix)}; it has no counterpart of the same shape there`,
        { tensor: name },
      );
    entries.delete(name);
  }
  return {
    description: src.description,
    entries,
    metadata: src.metadata,
    read: (name, dest) => src.read(name, dest),
    close: () => src.close(),
  };
}

/** Builds Zamba2 from checkpoint tensors; the shared blocks are loaded once. */
export async function buildZamba2(
  c: HybridConfig,
  src: TensorSource,
  backend: Backend,
  wdtype: WeightDType = 'f32',
): Promise<Zamba2LanguageModel> {
  const z = zamba2Of(c);
  const got = await loadExpectedTensors(
    withoutTiedCopies(c, src),
    expectedZamba2Tensors(c),
    c,
    () => [],
    backend,
    wdtype,
  );
  const t = loadedTensors(got, 'zamba2');
  const { g, o } = t;
  const a = c.attention;
  const sharedWeights = new Map<number, SharedBlockWeights>(); // by block
  const blocks: Block[] = c.layers.map((layer, i) => {
    const { norm, mixer: p } = mambaPrefix(c, i);
    const mamba = mamba2At(backend, c, t, p, { normEps: z.mambaNormEps });
    const call = layer.shared;
    if (!call) return { norm: g(norm), mixer: mamba, names: { norm, mixer: p } };
    const s = shared(call.owner);
    let w = sharedWeights.get(call.block);
    if (!w) {
      // q, k, v in one storage, one product per token where the dtype allows (stack-rows.ts)
      const names = ['q_proj', 'k_proj', 'v_proj'].map((n) => `${s}self_attn.${n}.weight`);
      const stacked = stackRows(backend, names.map(g));
      if (stacked) stacked.views.forEach((view, j) => got.set(names[j], view)); // the parameters from here on
      const [q, k, v] = names.map(g);
      w = {
        inputNorm: g(`${s}input_layernorm.weight`),
        q,
        k,
        v,
        qkv: stacked?.stack ?? null,
        o: g(`${s}self_attn.o_proj.weight`),
        preFfNorm: g(`${s}pre_ff_layernorm.weight`),
        gateUp: g(`${s}feed_forward.gate_up_proj.weight`),
        gateUpBias: o(`${s}feed_forward.gate_up_proj.bias`),
        down: g(`${s}feed_forward.down_proj.weight`),
        downBias: o(`${s}feed_forward.down_proj.bias`),
      };
      sharedWeights.set(call.block, w);
    }
    const n = adapterNames(call.owner, call.call);
    const lora = ([down, up]: string[]): LowRankAdapter => new LowRankAdapter(backend, g(down), g(up));
    const linear = `model.layers.${i}.linear.weight`;
    const blockCall = new SharedBlockCall(
      backend,
      w,
      {
        attention: z.attentionAdapters ? { q: lora(n.q), k: lora(n.k), v: lora(n.v) } : null,
        gateUp: lora(n.gateUp),
        linear: g(linear),
      },
      {
        d: c.dModel,
        heads: a.heads,
        kvHeads: a.kvHeads,
        headDim: a.headDim,
        rotaryDim: a.rotaryDim,
        ropeTheta: a.ropeTheta,
        scale: a.scale,
        intermediate: z.mlpIntermediate,
        activation: z.mlpActivation,
        eps: c.normEps,
      },
    );
    // parameter names relative to `model.`: the layer's own, this call's adapters (under the block's
    // owner) and, at the block's first call only, the shared weights
    const params = new Map<string, Tensor>([[linear, g(linear)]]);
    for (const [k, t] of mamba.parameters()) params.set(`${p}${k}`, t);
    const owned = [...(z.attentionAdapters ? [...n.q, ...n.k, ...n.v] : []), ...n.gateUp];
    if (call.owner === i)
      owned.push(...[...got.keys()].filter((k) => k.startsWith(s) && !k.includes('_adapter_list.')));
    for (const k of owned) params.set(k, g(k));
    const rel = new Map([...params].map(([k, t]) => [k.slice('model.'.length), t] as const));
    return { norm: g(norm), mixer: new Zamba2HybridLayer(blockCall, mamba, rel), names: { norm, mixer: 'model.' } };
  });
  const emb = g(E);
  const head = c.tieEmbeddings ? emb : g('lm_head.weight');
  return new Zamba2LanguageModel(c, backend, emb, blocks, g(NORM_F), head, {
    names: { embeddings: E, normF: NORM_F, lmHead: 'lm_head.weight' },
  });
}
