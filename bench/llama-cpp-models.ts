/**
 * The models of the llama.cpp side-by-side (bench/llama-cpp-side-by-side.ts): random weights in the
 * public shapes, described once and written twice from the same values — a Hugging Face directory
 * (config.json + model.safetensors, f16) for mamba-ts and a GGUF for llama.cpp, with llama.cpp's
 * metadata keys and tensor names for the architecture (read from its loader, src/models/*.cpp of the
 * llama.cpp release the npm package bundles, and its converter, conversion/*.py). The GGUF holds what
 * llama.cpp's converter would make of the safetensors: A = -exp(A_log), conv1d squeezed to
 * (channels, width), the grouped norm as (groups, width / groups), Granite's fused gate|up split into
 * ffn_gate and ffn_up.
 *
 * Shapes (the Hub's config.json could not be read from this machine; the values below are those of
 * the published configs as far as the public model cards and llama.cpp's size table confirm them:
 * 1.46B parameters for Granite 4.0-H 1B, 0.52B for Falcon-H1 0.5B):
 *   granite-4.0-h-1b: hidden 1536, 40 layers (4 attention, NoPE, 12 heads / 4 KV heads of 128;
 *     36 Mamba-2 with 48 heads of 64, d_state 128, 1 group), dense shared MLP 4096, vocab 100352, tied.
 *   granite-4.0-h-350m: hidden 768, 32 layers (4 attention at 10, 13, 17, 27; 12 / 4 heads of 64;
 *     Mamba-2 48 heads of 32, d_state 128), shared MLP 2048, vocab 100352, tied.
 *   falcon-h1-0.5b: hidden 1024, 36 layers each attention (8 heads / 2 KV of 64, RoPE) and Mamba-2
 *     (mamba_d_ssm 1536 = 24 heads of 64, d_state 128, 1 group) in parallel, MLP 2048, vocab 32784,
 *     untied lm_head.
 *   130m: state-spaces/mamba-130m (Mamba-1: d 768, 24 layers, d_state 16, vocab 50280, tied).
 * Where the attention layers sit and the muP/multiplier values change no work per token: Falcon-H1's
 * multipliers are set to 1 so that the same tensors mean the same model in both programs (llama.cpp's
 * converter folds them into the weights, which changes no shape and no speed).
 */
import type { GgufValue } from './gguf-writer.js';

/** One tensor as llama.cpp holds it: GGUF name, shape (PyTorch order) and how it derives from the checkpoint's. */
export interface GgufPart {
  name: string;
  shape: number[];
  /** Only these elements of the checkpoint tensor (a block of rows), [start, end). */
  range?: [number, number];
  /** A = -exp(A_log), as llama.cpp's converter stores it. */
  negExp?: boolean;
  /** Stays f32 whatever the format (norms, conv, A, D, biases), as llama.cpp's converter keeps them. */
  keepF32?: boolean;
}

export interface BenchTensor {
  /** Hugging Face name and shape (what mamba-ts reads). */
  hf: string;
  shape: number[];
  init: Init;
  gguf: GgufPart[];
}

/** How the random values are drawn (all rounded to f16, the checkpoint's dtype). */
export type Init =
  | { kind: 'uniform'; scale: number }
  | { kind: 'around'; center: number; spread: number }
  | { kind: 'alog'; period: number };

export interface BenchModel {
  name: string;
  /** What the shape stands for. */
  source: string;
  config: Record<string, unknown>;
  tensors: BenchTensor[];
  /** llama.cpp's architecture name and metadata (without tokenizer and general.* keys). */
  ggufArch: string;
  ggufKv: Array<[string, GgufValue]>;
  vocab: number;
}

const mat = (hf: string, rows: number, cols: number, gguf: string): BenchTensor => ({
  hf,
  shape: [rows, cols],
  init: { kind: 'uniform', scale: 1 / Math.sqrt(cols) },
  gguf: [{ name: gguf, shape: [rows, cols] }],
});
const vec = (
  hf: string,
  n: number,
  gguf: string,
  init: Init = { kind: 'around', center: 1, spread: 0.2 },
): BenchTensor => ({
  hf,
  shape: [n],
  init,
  gguf: [{ name: gguf, shape: [n], keepF32: true }],
});

/** The Mamba-2 mixer of layer i (Granite's and Falcon-H1's share the layout). */
function mamba2(
  p: string,
  b: string,
  d: number,
  dInner: number,
  heads: number,
  groups: number,
  dState: number,
  norm: boolean,
): BenchTensor[] {
  const conv = dInner + 2 * groups * dState;
  const W = dInner + conv + heads;
  const t: BenchTensor[] = [
    mat(`${p}in_proj.weight`, W, d, `${b}ssm_in.weight`),
    {
      hf: `${p}conv1d.weight`,
      shape: [conv, 1, 4],
      init: { kind: 'uniform', scale: 0.5 },
      gguf: [{ name: `${b}ssm_conv1d.weight`, shape: [conv, 4], keepF32: true }],
    },
    vec(`${p}conv1d.bias`, conv, `${b}ssm_conv1d.bias`, { kind: 'uniform', scale: 0.1 }),
    vec(`${p}dt_bias`, heads, `${b}ssm_dt.bias`, { kind: 'around', center: -4.6, spread: 1 }),
    {
      hf: `${p}A_log`,
      shape: [heads],
      init: { kind: 'alog', period: heads },
      gguf: [{ name: `${b}ssm_a`, shape: [heads, 1], negExp: true, keepF32: true }],
    },
    {
      hf: `${p}D`,
      shape: [heads],
      init: { kind: 'around', center: 1, spread: 0.2 },
      gguf: [{ name: `${b}ssm_d`, shape: [heads, 1], keepF32: true }],
    },
    mat(`${p}out_proj.weight`, d, dInner, `${b}ssm_out.weight`),
  ];
  if (norm)
    t.push({
      hf: `${p}norm.weight`,
      shape: [dInner],
      init: { kind: 'around', center: 1, spread: 0.2 },
      gguf: [{ name: `${b}ssm_norm.weight`, shape: [groups, dInner / groups], keepF32: true }],
    });
  return t;
}

function attention(p: string, b: string, d: number, heads: number, kvHeads: number, headDim: number): BenchTensor[] {
  return [
    mat(`${p}q_proj.weight`, heads * headDim, d, `${b}attn_q.weight`),
    mat(`${p}k_proj.weight`, kvHeads * headDim, d, `${b}attn_k.weight`),
    mat(`${p}v_proj.weight`, kvHeads * headDim, d, `${b}attn_v.weight`),
    mat(`${p}o_proj.weight`, d, heads * headDim, `${b}attn_output.weight`),
  ];
}

interface GraniteShape {
  name: string;
  source: string;
  d: number;
  layers: number;
  attentionAt: number[];
  heads: number;
  kvHeads: number;
  mambaHeads: number;
  dState: number;
  ff: number;
  vocab: number;
}

function granite(s: GraniteShape): BenchModel {
  const dInner = 2 * s.d;
  const headDim = s.d / s.heads;
  const types = Array.from({ length: s.layers }, (_, i) => (s.attentionAt.includes(i) ? 'attention' : 'mamba'));
  const tensors: BenchTensor[] = [mat('model.embed_tokens.weight', s.vocab, s.d, 'token_embd.weight')];
  // small next to the layers' outputs once multiplied by embedding_multiplier 12: otherwise the
  // residual stream is the last token's embedding and greedy decoding echoes it (a weak check)
  tensors[0].init = { kind: 'uniform', scale: 0.005 };
  types.forEach((t, i) => {
    const p = `model.layers.${i}.`,
      b = `blk.${i}.`;
    tensors.push(vec(`${p}input_layernorm.weight`, s.d, `${b}attn_norm.weight`));
    if (t === 'mamba') tensors.push(...mamba2(`${p}mamba.`, b, s.d, dInner, s.mambaHeads, 1, s.dState, true));
    else tensors.push(...attention(`${p}self_attn.`, b, s.d, s.heads, s.kvHeads, headDim));
    tensors.push(vec(`${p}post_attention_layernorm.weight`, s.d, `${b}ffn_norm.weight`));
    // transformers' GraniteMoeSharedMLP: input_linear's first half is the gate, the second the up projection
    tensors.push({
      hf: `${p}shared_mlp.input_linear.weight`,
      shape: [2 * s.ff, s.d],
      init: { kind: 'uniform', scale: 1 / Math.sqrt(s.d) },
      gguf: [
        { name: `${b}ffn_gate.weight`, shape: [s.ff, s.d], range: [0, s.ff * s.d] },
        { name: `${b}ffn_up.weight`, shape: [s.ff, s.d], range: [s.ff * s.d, 2 * s.ff * s.d] },
      ],
    });
    tensors.push(mat(`${p}shared_mlp.output_linear.weight`, s.d, s.ff, `${b}ffn_down.weight`));
  });
  tensors.push(vec('model.norm.weight', s.d, 'output_norm.weight'));
  const A = 'granitehybrid';
  const multipliers = { embedding: 12, residual: 0.22, attention: 1 / headDim, logits: 6 };
  return {
    name: s.name,
    source: s.source,
    vocab: s.vocab,
    config: {
      architectures: ['GraniteMoeHybridForCausalLM'],
      model_type: 'granitemoehybrid',
      hidden_size: s.d,
      num_hidden_layers: s.layers,
      layer_types: types,
      num_attention_heads: s.heads,
      num_key_value_heads: s.kvHeads,
      num_local_experts: 0,
      num_experts_per_tok: 0,
      shared_intermediate_size: s.ff,
      intermediate_size: s.ff,
      mamba_n_heads: s.mambaHeads,
      mamba_d_head: dInner / s.mambaHeads,
      mamba_d_state: s.dState,
      mamba_n_groups: 1,
      mamba_d_conv: 4,
      mamba_expand: 2,
      mamba_chunk_size: 256,
      mamba_conv_bias: true,
      mamba_proj_bias: false,
      position_embedding_type: 'nope',
      attention_bias: false,
      hidden_act: 'silu',
      rms_norm_eps: 1e-5,
      embedding_multiplier: multipliers.embedding,
      residual_multiplier: multipliers.residual,
      attention_multiplier: multipliers.attention,
      logits_scaling: multipliers.logits,
      vocab_size: s.vocab,
      tie_word_embeddings: true,
      max_position_embeddings: 131072,
      bos_token_id: 1,
      eos_token_id: 2,
      pad_token_id: 0,
      torch_dtype: 'float16',
    },
    tensors,
    ggufArch: A,
    ggufKv: [
      [`${A}.context_length`, { u32: 131072 }],
      [`${A}.embedding_length`, { u32: s.d }],
      [`${A}.block_count`, { u32: s.layers }],
      [`${A}.feed_forward_length`, { u32: s.ff }],
      [`${A}.attention.head_count`, { u32: s.heads }],
      // a layer is recurrent where its KV head count is 0 (llama.cpp's granite-hybrid loader)
      [`${A}.attention.head_count_kv`, { i32s: types.map((t) => (t === 'attention' ? s.kvHeads : 0)) }],
      [`${A}.attention.layer_norm_rms_epsilon`, { f32: 1e-5 }],
      [`${A}.embedding_scale`, { f32: multipliers.embedding }],
      [`${A}.residual_scale`, { f32: multipliers.residual }],
      [`${A}.attention.scale`, { f32: multipliers.attention }],
      [`${A}.logit_scale`, { f32: multipliers.logits }],
      [`${A}.ssm.conv_kernel`, { u32: 4 }],
      [`${A}.ssm.inner_size`, { u32: dInner }],
      [`${A}.ssm.state_size`, { u32: s.dState }],
      [`${A}.ssm.time_step_rank`, { u32: s.mambaHeads }],
      [`${A}.ssm.group_count`, { u32: 1 }],
      // NoPE: Granite's loader reads rope.scaling.finetuned as the switch for RoPE
      [`${A}.rope.scaling.finetuned`, { bool: false }],
    ],
  };
}

function falconH1(): BenchModel {
  const d = 1024,
    layers = 36,
    heads = 8,
    kvHeads = 2,
    headDim = 64,
    dSsm = 1536,
    mHeads = 24,
    dState = 128,
    ff = 2048,
    vocab = 32784;
  const tensors: BenchTensor[] = [mat('model.embed_tokens.weight', vocab, d, 'token_embd.weight')];
  tensors[0].init = { kind: 'uniform', scale: 0.05 };
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`,
      b = `blk.${i}.`;
    tensors.push(vec(`${p}input_layernorm.weight`, d, `${b}attn_norm.weight`));
    tensors.push(...mamba2(`${p}mamba.`, b, d, dSsm, mHeads, 1, dState, false));
    tensors.push(...attention(`${p}self_attn.`, b, d, heads, kvHeads, headDim));
    // llama.cpp's falcon-h1 loader names this one without a ".weight" suffix
    tensors.push(vec(`${p}pre_ff_layernorm.weight`, d, `${b}ffn_norm`));
    tensors.push(mat(`${p}feed_forward.gate_proj.weight`, ff, d, `${b}ffn_gate.weight`));
    tensors.push(mat(`${p}feed_forward.up_proj.weight`, ff, d, `${b}ffn_up.weight`));
    tensors.push(mat(`${p}feed_forward.down_proj.weight`, d, ff, `${b}ffn_down.weight`));
  }
  tensors.push(vec('model.final_layernorm.weight', d, 'output_norm.weight'));
  tensors.push(mat('lm_head.weight', vocab, d, 'output.weight'));
  const A = 'falcon-h1';
  return {
    name: 'falcon-h1-0.5b',
    source: 'tiiuae/Falcon-H1-0.5B-Base shapes',
    vocab,
    config: {
      architectures: ['FalconH1ForCausalLM'],
      model_type: 'falcon_h1',
      hidden_size: d,
      num_hidden_layers: layers,
      num_attention_heads: heads,
      num_key_value_heads: kvHeads,
      head_dim: headDim,
      intermediate_size: ff,
      mamba_d_ssm: dSsm,
      mamba_n_heads: mHeads,
      mamba_d_head: dSsm / mHeads,
      mamba_d_state: dState,
      mamba_n_groups: 1,
      mamba_d_conv: 4,
      mamba_expand: 2,
      mamba_chunk_size: 128,
      mamba_conv_bias: true,
      mamba_proj_bias: false,
      mamba_rms_norm: false,
      mamba_norm_before_gate: false,
      attention_bias: false,
      mlp_bias: false,
      projectors_bias: false,
      hidden_act: 'silu',
      rms_norm_eps: 1e-5,
      rope_theta: 100000000000,
      embedding_multiplier: 1,
      lm_head_multiplier: 1,
      attention_in_multiplier: 1,
      attention_out_multiplier: 1,
      key_multiplier: 1,
      ssm_in_multiplier: 1,
      ssm_out_multiplier: 1,
      ssm_multipliers: [1, 1, 1, 1, 1],
      mlp_multipliers: [1, 1],
      vocab_size: vocab,
      tie_word_embeddings: false,
      max_position_embeddings: 16384,
      bos_token_id: 1,
      eos_token_id: 11,
      pad_token_id: 0,
      torch_dtype: 'float16',
    },
    tensors,
    ggufArch: A,
    ggufKv: [
      [`${A}.context_length`, { u32: 16384 }],
      [`${A}.embedding_length`, { u32: d }],
      [`${A}.block_count`, { u32: layers }],
      [`${A}.feed_forward_length`, { u32: ff }],
      [`${A}.attention.head_count`, { u32: heads }],
      [`${A}.attention.head_count_kv`, { u32: kvHeads }],
      [`${A}.attention.key_length`, { u32: headDim }],
      [`${A}.attention.value_length`, { u32: headDim }],
      [`${A}.attention.layer_norm_rms_epsilon`, { f32: 1e-5 }],
      [`${A}.rope.freq_base`, { f32: 100000000000 }],
      [`${A}.ssm.conv_kernel`, { u32: 4 }],
      [`${A}.ssm.inner_size`, { u32: dSsm }],
      [`${A}.ssm.state_size`, { u32: dState }],
      [`${A}.ssm.time_step_rank`, { u32: mHeads }],
      [`${A}.ssm.group_count`, { u32: 1 }],
    ],
  };
}

function mamba130m(): BenchModel {
  const d = 768,
    layers = 24,
    dInner = 1536,
    n = 16,
    r = 48,
    vocab = 50280;
  const tensors: BenchTensor[] = [mat('backbone.embeddings.weight', vocab, d, 'token_embd.weight')];
  tensors[0].init = { kind: 'uniform', scale: 0.05 };
  for (let i = 0; i < layers; i++) {
    const p = `backbone.layers.${i}.mixer.`,
      b = `blk.${i}.`;
    tensors.push(vec(`backbone.layers.${i}.norm.weight`, d, `${b}attn_norm.weight`));
    tensors.push(
      mat(`${p}in_proj.weight`, 2 * dInner, d, `${b}ssm_in.weight`),
      {
        hf: `${p}conv1d.weight`,
        shape: [dInner, 1, 4],
        init: { kind: 'uniform', scale: 0.5 },
        gguf: [{ name: `${b}ssm_conv1d.weight`, shape: [dInner, 4], keepF32: true }],
      },
      vec(`${p}conv1d.bias`, dInner, `${b}ssm_conv1d.bias`, { kind: 'uniform', scale: 0.1 }),
      mat(`${p}x_proj.weight`, r + 2 * n, dInner, `${b}ssm_x.weight`),
      mat(`${p}dt_proj.weight`, dInner, r, `${b}ssm_dt.weight`),
      vec(`${p}dt_proj.bias`, dInner, `${b}ssm_dt.bias`, { kind: 'around', center: -4.6, spread: 1 }),
      {
        hf: `${p}A_log`,
        shape: [dInner, n],
        init: { kind: 'alog', period: n },
        gguf: [{ name: `${b}ssm_a`, shape: [dInner, n], negExp: true, keepF32: true }],
      },
      {
        hf: `${p}D`,
        shape: [dInner],
        init: { kind: 'around', center: 1, spread: 0.2 },
        gguf: [{ name: `${b}ssm_d`, shape: [dInner], keepF32: true }],
      },
      mat(`${p}out_proj.weight`, d, dInner, `${b}ssm_out.weight`),
    );
  }
  tensors.push(vec('backbone.norm_f.weight', d, 'output_norm.weight'));
  const A = 'mamba';
  return {
    name: '130m',
    source: 'state-spaces/mamba-130m shapes',
    vocab,
    config: {
      architectures: ['MambaForCausalLM'],
      model_type: 'mamba',
      hidden_size: d,
      num_hidden_layers: layers,
      intermediate_size: dInner,
      state_size: n,
      conv_kernel: 4,
      expand: 2,
      time_step_rank: r,
      use_bias: false,
      use_conv_bias: true,
      layer_norm_epsilon: 1e-5,
      residual_in_fp32: true,
      vocab_size: vocab,
      tie_word_embeddings: true,
      bos_token_id: 0,
      eos_token_id: 0,
      pad_token_id: 0,
      torch_dtype: 'float16',
    },
    tensors,
    ggufArch: A,
    ggufKv: [
      [`${A}.context_length`, { u32: 1048576 }],
      [`${A}.embedding_length`, { u32: d }],
      [`${A}.block_count`, { u32: layers }],
      [`${A}.feed_forward_length`, { u32: 0 }],
      [`${A}.attention.head_count`, { u32: 0 }],
      [`${A}.attention.layer_norm_rms_epsilon`, { f32: 1e-5 }],
      [`${A}.ssm.conv_kernel`, { u32: 4 }],
      [`${A}.ssm.inner_size`, { u32: dInner }],
      [`${A}.ssm.state_size`, { u32: n }],
      [`${A}.ssm.time_step_rank`, { u32: r }],
    ],
  };
}

export const BENCH_MODELS: Record<string, () => BenchModel> = {
  '130m': mamba130m,
  'granite-4.0-h-350m': () =>
    granite({
      name: 'granite-4.0-h-350m',
      source: 'ibm-granite/granite-4.0-h-350m shapes',
      d: 768,
      layers: 32,
      attentionAt: [10, 13, 17, 27],
      heads: 12,
      kvHeads: 4,
      mambaHeads: 48,
      dState: 128,
      ff: 2048,
      vocab: 100352,
    }),
  'granite-4.0-h-1b': () =>
    granite({
      name: 'granite-4.0-h-1b',
      source: 'ibm-granite/granite-4.0-h-1b shapes',
      d: 1536,
      layers: 40,
      attentionAt: [10, 13, 17, 27],
      heads: 12,
      kvHeads: 4,
      mambaHeads: 48,
      dState: 128,
      ff: 4096,
      vocab: 100352,
    }),
  'falcon-h1-0.5b': falconH1,
};
