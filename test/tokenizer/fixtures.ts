/** Paths of committed tokenizer fixtures, from the compiled test (dist/test/tokenizer/) to the repo root. */
import { fileURLToPath } from 'node:url';

/**
 * fixtures/tokenizer/tiny-bpe: a GPT-2 style byte-level BPE. Ids: `<|endoftext|>` = 0, byte b = 1 + b,
 * then 16 merges (ids 257..272), in rank order:
 *   Ġ t, h e, Ġt he, l l, e ll, he ll, hell o, Ġ w, o r, Ġw or, l d, Ġwor ld, Ã ©, ð Ł, ä ¸, Ġ ðŁ
 * Its tokenizer_config.json gives eos_token as an AddedToken object and bos_token as a string.
 */
export const TINY_BPE_DIR = fileURLToPath(new URL('../../../fixtures/tokenizer/tiny-bpe/', import.meta.url));
