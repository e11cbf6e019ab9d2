import { familyParity } from '../helpers/family.js';

/**
 * Nemotron-H against transformers 5.17 (fixtures/family/nemotron-h): pattern M-M*E (Mamba-2, relu² MLP,
 * Mamba-2, NoPE attention, MoE with the sigmoid router, correction bias, scaling and a shared expert).
 */
familyParity('nemotron-h');
