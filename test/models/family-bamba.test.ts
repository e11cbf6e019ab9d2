import { familyParity } from '../helpers/family.js';

/** Bamba against transformers 5.17 (fixtures/family/bamba): M/attn/M, partial rotary 0.5, GQA 4/2, n_groups 2. */
familyParity('bamba');
