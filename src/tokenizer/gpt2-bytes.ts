/**
 * GPT-2's byte-level alphabet, shared by every byte-level BPE (GPT-2, GPT-NeoX/Mamba, the tokenizers
 * mamba-ts trains or builds).
 *
 * A byte-level BPE works on UTF-8 bytes, but its vocabulary is stored as JSON strings, so each byte is
 * shown as one printable Unicode character: the 188 bytes that are printable Latin-1 (`!`..`~`,
 * `¡`..`¬`, `®`..`ÿ`) stand for themselves and the other 68 (controls, space, DEL, NBSP, soft hyphen)
 * are mapped in byte order to U+0100.. (space 0x20 becomes `Ġ` U+0120, newline 0x0A becomes `Ċ`).
 * Source: `bytes_to_unicode()` in openai/gpt-2 `src/encoder.py`, which Hugging Face tokenizers'
 * ByteLevel pre-tokenizer and decoder reproduce.
 */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const isPrintable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(isPrintable(b) ? b : next++);
  return table;
})();

/** The inverse of BYTE_TO_UNICODE: alphabet character -> byte value. */
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((ch, b) => [ch, b]));

/**
 * GPT-2's pre-tokenization pattern (`encoder.py`; Hugging Face ByteLevel pre-tokenizer with
 * `use_regex: true`): English contractions, optionally space-prefixed runs of letters, of digits, of
 * other symbols, and whitespace runs, where a whitespace run before a word leaves its last space to
 * prefix that word. BPE merges never cross these pieces.
 */
export const GPT2_PRETOKENIZE_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
