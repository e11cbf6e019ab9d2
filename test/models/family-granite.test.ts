import { familyParity } from '../helpers/family.js';

/**
 * Granite 4.0-H (granitemoehybrid) against transformers 5.17 (fixtures/family): NoPE + MoE + shared MLP,
 * tied, in the Hub's vocabulary (granite-hybrid-nope); RoPE, dense (shared MLP alone), untied
 * (granite-hybrid-rope-dense); bf16 weights in 4 shards (granite-hybrid-bf16-sharded: the reference is
 * the bf16-rounded weights in f32, so f32 loading matches to 1e-4; kept bf16 in memory, as loose as the
 * Mamba bf16 test).
 */
familyParity('granite-hybrid-nope');
familyParity('granite-hybrid-rope-dense');
familyParity('granite-hybrid-bf16-sharded');
familyParity('granite-hybrid-bf16-sharded', 'auto');
