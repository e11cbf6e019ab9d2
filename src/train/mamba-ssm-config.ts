import type { Mamba3Config } from '../models/config.js';

/**
 * config.json of a Mamba-3 language model in the original mamba_ssm layout (`MambaConfig` of
 * mamba_ssm/models/config_mamba.py, `ssm_cfg.layer` "Mamba3"): transformers has no Mamba-3, so a Mamba-3
 * checkpoint keeps the layout mamba_ssm's `MambaLMHeadModel(MambaConfig(**json))` builds (its weights:
 * `load_state_dict(safetensors.torch.load_file("model.safetensors"), strict=False)`; the names are
 * mamba-ts's, with `backbone.embeddings` for mamba_ssm's `backbone.embedding`, as for the other models).
 * The vocabulary is written already padded, with pad_vocab_size_multiple 1, so both sides agree on it.
 */
export function mambaSsmMamba3ConfigJson(c: Mamba3Config): Record<string, unknown> {
  return {
    d_model: c.dModel,
    d_intermediate: 0,
    n_layer: c.nLayer,
    vocab_size: c.vocabSize,
    ssm_cfg: {
      layer: 'Mamba3',
      d_state: c.dState,
      expand: c.expand,
      headdim: c.headDim,
      ngroups: c.nGroups,
      rope_fraction: c.ropeFraction,
      A_floor: c.aFloor,
      is_outproj_norm: c.isOutprojNorm,
      is_mimo: c.isMimo,
      mimo_rank: c.isMimo ? c.mimoRank : 4,
      chunk_size: c.chunkSize,
    },
    attn_layer_idx: [],
    attn_cfg: {},
    rms_norm: true,
    residual_in_fp32: true,
    fused_add_norm: true,
    pad_vocab_size_multiple: 1,
    tie_embeddings: c.tieEmbeddings,
  };
}
