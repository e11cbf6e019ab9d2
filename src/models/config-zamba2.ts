import { fail } from '../errors.js';
import type { ConfigReader } from './config-reader.js';

/**
 * config.json of Zyphra's Zamba2 (model_type "zamba2": Zamba2-1.2B, 2.7B, 7B), as transformers 5.17's
 * Zamba2Config reads it (the math: fixtures/family/MATH.md "zamba2"). A Mamba-2 backbone; at the layers
 * marked "hybrid" a **shared** attention + MLP block runs first, on concat(h, e0) (the residual stream and
 * the embeddings, 2·hidden wide), with LoRA adapters of its own at each call site; its output, through the
 * layer's own linear, is added to the Mamba layer's input (not to the residual).
 *
 * `parseZamba2` returns the pieces of a HybridConfig; config-hybrid.ts assigns them to that type (which
 * checks them): naming the type here would make the two files import each other.
 *
 * As transformers does, the derived sizes are computed, not read: attention head_dim = 2·hidden / heads,
 * mamba head_dim = mamba_expand·hidden / n_mamba_heads, hybrid_layer_ids = the "hybrid" layers (a
 * config.json value that disagrees is an error, never silently another model).
 */

/** A hybrid layer's call of a shared block. */
export interface SharedBlockCall {
  /** Which shared block: the call's index mod num_mem_blocks. */
  block: number;
  /** j: the call's position in hybrid_layer_ids; picks the call's adapters (`*_adapter_list.{j}`). */
  call: number;
  /** The layer whose checkpoint names hold the block's weights and all its adapters (the first that calls it). */
  owner: number;
}

/** The shared blocks' sizes (the attention's are HybridConfig.attention, on the 2·hidden input). */
export interface Zamba2Shared {
  /** num_mem_blocks: how many distinct shared blocks alternate over the hybrid layers. */
  blocks: number;
  /** The adapters' rank (adapter_rank). */
  adapterRank: number;
  /** use_shared_attention_adapter: LoRA adapters on q, k, v (the MLP's gate_up always has one). */
  attentionAdapters: boolean;
  /** The shared block's input width, 2·hidden (concat of the residual stream and the embeddings). */
  inputWidth: number;
  /** MLP: down(act(gate) ⊙ up) with [gate; up] = gate_up_proj(x) + adapter(x). */
  mlpIntermediate: number;
  mlpActivation: 'gelu' | 'silu';
  /** add_bias_linear: biases on gate_up_proj and down_proj (and the Mamba in/out projections). */
  mlpBias: boolean;
  /** The Mamba-2 gated norm's eps: transformers fixes it at 1e-5 whatever rms_norm_eps says. */
  mambaNormEps: number;
}

/** Layer kinds: the Hub writes "mamba"/"hybrid", transformers 5 "linear_attention"/"hybrid". */
const MAMBA_NAMES = ['mamba', 'linear_attention'];

/** The layer list: each layer Mamba-2, and the hybrid ones with their shared-block call. */
function zamba2Layers(
  r: ConfigReader,
  nLayer: number,
  blocks: number,
): { mixer: 'mamba2'; ffn: null; shared?: SharedBlockCall }[] {
  const types = r.raw.layers_block_type ?? r.raw.layer_types;
  if (!Array.isArray(types) || types.length !== nLayer)
    fail(
      'CORRUPT_FILE',
      `${r.where}: zamba2 needs layers_block_type listing the ${nLayer} layers' types ("mamba" or "hybrid")`,
    );
  const owners: number[] = [];
  let call = 0;
  const layers = types.map((t, i) => {
    if (MAMBA_NAMES.includes(t as string)) return { mixer: 'mamba2' as const, ffn: null };
    if (t !== 'hybrid')
      r.unsupported(`layers_block_type[${i}] ${JSON.stringify(t)}`, 'mamba, linear_attention, hybrid');
    const block = call % blocks;
    if (owners[block] === undefined) owners[block] = i;
    return { mixer: 'mamba2' as const, ffn: null, shared: { block, call: call++, owner: owners[block] } };
  });
  const ids = layers.flatMap((l, i) => (l.shared ? [i] : []));
  if (r.has('hybrid_layer_ids') && JSON.stringify(r.raw.hybrid_layer_ids) !== JSON.stringify(ids))
    fail(
      'CORRUPT_FILE',
      `${r.where}: hybrid_layer_ids ${JSON.stringify(r.raw.hybrid_layer_ids)} disagrees with the "hybrid" layers of layers_block_type ${JSON.stringify(ids)}`,
    );
  return layers;
}

/** A derived size transformers computes; a config.json value that disagrees is refused. */
function derived(r: ConfigReader, key: string, value: number, how: string): number {
  if (r.has(key) && r.raw[key] !== null && r.raw[key] !== value)
    fail('CORRUPT_FILE', `${r.where}: ${key} ${JSON.stringify(r.raw[key])} disagrees with ${how} = ${value}`);
  return value;
}

export function parseZamba2(r: ConfigReader) {
  const dModel = r.int('hidden_size', 2560);
  const nLayer = r.int('num_hidden_layers', 54);
  const blocks = r.int('num_mem_blocks', 1);
  if (!(blocks >= 1)) fail('CORRUPT_FILE', `${r.where}: num_mem_blocks must be at least 1, got ${blocks}`);
  const layers = zamba2Layers(r, nLayer, blocks);
  if (!layers.some((l) => l.shared))
    fail('CORRUPT_FILE', `${r.where}: zamba2 with no "hybrid" layer in layers_block_type`);

  // Mamba-2
  const dInner = Math.floor(r.num('mamba_expand', 2) * dModel);
  const nHeads = r.int('n_mamba_heads', 8);
  if (dInner % nHeads !== 0)
    fail('CORRUPT_FILE', `${r.where}: n_mamba_heads ${nHeads} must divide mamba_expand x hidden_size = ${dInner}`);
  const headDim = derived(r, 'mamba_headdim', dInner / nHeads, 'mamba_expand x hidden_size / n_mamba_heads');
  const nGroups = r.int('mamba_ngroups', 1);
  const bias = r.bool('add_bias_linear', false);

  // the shared attention: on 2·hidden, head_dim 2·hidden / heads, softmax scale 1/sqrt(head_dim / 2)
  const width = 2 * dModel;
  const heads = r.int('num_attention_heads', 32);
  const kvHeads =
    r.has('num_key_value_heads') && r.raw.num_key_value_heads !== null ? r.int('num_key_value_heads') : heads;
  if (width % heads !== 0)
    fail('CORRUPT_FILE', `${r.where}: num_attention_heads ${heads} must divide 2 x hidden_size = ${width}`);
  const attHeadDim = derived(r, 'attention_head_dim', width / heads, '2 x hidden_size / num_attention_heads');
  derived(r, 'attention_hidden_size', width, '2 x hidden_size');
  const attentionAdapters = r.bool('use_shared_attention_adapter', false);
  if (attentionAdapters && kvHeads !== heads)
    r.unsupported(
      `num_key_value_heads ${kvHeads} with use_shared_attention_adapter (the k/v adapters are 2 x hidden_size wide, as transformers builds them)`,
      `num_key_value_heads = num_attention_heads ${heads}`,
    );
  if (r.bool('use_long_context', false))
    r.unsupported('use_long_context true (its RoPE rescaling differs between transformers versions)', 'false');
  const p = r.raw.rope_parameters as Record<string, unknown> | undefined;
  const scaling = r.raw.rope_scaling as Record<string, unknown> | null | undefined;
  const ropeType = (p?.rope_type ?? scaling?.rope_type ?? scaling?.type ?? 'default') as unknown;
  if (ropeType !== 'default') r.unsupported(`rope_type ${JSON.stringify(ropeType)}`, '"default" RoPE');
  const ropeTheta = typeof p?.rope_theta === 'number' ? p.rope_theta : r.num('rope_theta', 10000);

  const act = r.str('hidden_act', 'gelu');
  if (act !== 'gelu' && act !== 'silu') r.unsupported(`hidden_act "${act}"`, '"gelu" (exact), "silu"');
  const adapterRank = r.int('adapter_rank', 128);
  const shared: Zamba2Shared = {
    blocks,
    adapterRank,
    attentionAdapters,
    inputWidth: width,
    mlpIntermediate:
      r.has('intermediate_size') && r.raw.intermediate_size !== null ? r.int('intermediate_size') : 4 * dModel,
    mlpActivation: act,
    mlpBias: bias,
    mambaNormEps: 1e-5,
  };
  for (const [k, v] of [
    ['adapter_rank', adapterRank],
    ['intermediate_size', shared.mlpIntermediate],
  ] as const)
    if (!(Number.isSafeInteger(v) && v > 0 && v <= 1 << 20))
      fail('CORRUPT_FILE', `${r.where}: ${k} must be a positive integer within bounds, got ${v}`);
  return {
    arch: 'zamba2' as const,
    dModel,
    nLayer,
    vocabSize: r.int('vocab_size', 32000),
    normEps: r.num('rms_norm_eps', 1e-5),
    tieEmbeddings: r.bool('tie_word_embeddings', true),
    layers,
    mamba: {
      nHeads,
      headDim,
      nGroups,
      dState: r.int('mamba_d_state', 64),
      dConv: r.int('mamba_d_conv', 4),
      chunkSize: r.int('chunk_size', 256),
      dInner,
      useBias: bias,
      // transformers builds conv1d with a bias whatever use_conv_bias says
      useConvBias: true,
      // transformers clamps dt >= time_step_min in the chunked (prefill) form only; mamba_ssm's default
      // (0, inf) in both forms, as llama.cpp and transformers 4.x's Zamba2 (fixtures/family/README.md)
      timeStepLimit: [0, Infinity] as [number, number],
      normGroupSize: dInner / nGroups,
    },
    attention: {
      heads,
      kvHeads,
      headDim: attHeadDim,
      rotaryDim: r.bool('use_mem_rope', false) ? attHeadDim : 0,
      ropeTheta,
      scale: 1 / Math.sqrt(attHeadDim / 2),
      bias: false,
      outBias: false,
    },
    mlp: null,
    moe: null,
    embeddingMultiplier: 1,
    residualMultiplier: 1,
    logitsScaling: 1,
    eosTokenId: r.tokenId('eos_token_id'),
    bosTokenId: r.tokenId('bos_token_id'),
    padTokenId: r.tokenId('pad_token_id'),
    layout: 'hf' as const,
    zamba2: shared,
  };
}
