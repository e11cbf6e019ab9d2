/**
 * transformers' `clean_up_tokenization`: the space-removal that `decode(..., clean_up_tokenization_spaces=True)`
 * applies after detokenising (`"Hello , world ."` -> `"Hello, world."`), in a whole-text form and a
 * streaming form that give identical text.
 *
 * Source: `PreTrainedTokenizerBase.clean_up_tokenization` in transformers (tokenizers.js has the same
 * list): ten literal replacements, each applied to the whole text in turn, left to right and
 * non-overlapping (`str.replace`).
 */

const REPLACEMENTS: readonly (readonly [string, string])[] = [
  [' .', '.'],
  [' ?', '?'],
  [' !', '!'],
  [' ,', ','],
  [" ' ", "'"],
  [" n't", "n't"],
  [" 'm", "'m"],
  [" 's", "'s"],
  [" 've", "'ve"],
  [" 're", "'re"],
];

export function cleanUpTokenization(text: string): string {
  let out = text;
  for (const [from, to] of REPLACEMENTS) out = out.replaceAll(from, to);
  return out;
}

/**
 * One replacement pass over a text that arrives in pieces. It emits everything up to a tail that might
 * still become the start of a match (a proper prefix of the pattern at the end of what has arrived), so
 * the concatenated output is exactly `whole.replaceAll(from, to)`.
 */
class ReplacePass {
  private pending = '';

  constructor(
    private readonly from: string,
    private readonly to: string,
  ) {}

  push(chunk: string, end: boolean): string {
    const text = this.pending + chunk;
    const first = this.from[0];
    let out = '';
    let copied = 0; // text[copied, i) is decided and not yet copied to out
    let i = text.indexOf(first);
    while (i !== -1) {
      if (text.startsWith(this.from, i)) {
        out += text.slice(copied, i) + this.to;
        copied = i + this.from.length;
        i = text.indexOf(first, copied);
      } else if (!end && text.length - i < this.from.length && this.from.startsWith(text.slice(i))) {
        break; // the rest may still grow into a match
      } else {
        i = text.indexOf(first, i + 1);
      }
    }
    const stop = i === -1 ? text.length : i;
    out += text.slice(copied, stop);
    this.pending = text.slice(stop);
    return out;
  }
}

/** `cleanUpTokenization` over text that arrives in pieces: `push` pieces, then `end()` once. */
export class CleanUpStream {
  private readonly passes = REPLACEMENTS.map(([from, to]) => new ReplacePass(from, to));

  push(chunk: string): string {
    return this.run(chunk, false);
  }

  /** Emits what was held back; the stream is then empty and can take a new text. */
  end(): string {
    return this.run('', true);
  }

  private run(chunk: string, end: boolean): string {
    let text = chunk;
    for (const pass of this.passes) text = pass.push(text, end);
    return text;
  }
}
