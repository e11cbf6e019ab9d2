/**
 * Stop strings on a text stream: text is released only when it can no longer be the beginning of a
 * stop string, so nothing is printed and then taken back. When a stop string appears, the text before
 * it is released and the stream ends (the stop string itself is not part of the output, as in
 * transformers' `stop_strings` / llama.cpp's `--reverse-prompt`... minus the echo).
 */
export class StopStringFilter {
  private held = '';
  private stopped = false;

  constructor(private readonly stops: readonly string[]) {}

  get done(): boolean {
    return this.stopped;
  }

  /** Adds new text; returns what can be released now. */
  push(text: string): string {
    if (this.stopped) return '';
    if (this.stops.length === 0) return text;
    this.held += text;
    let cut = -1;
    for (const s of this.stops) {
      const i = this.held.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      const out = this.held.slice(0, cut);
      this.held = '';
      this.stopped = true;
      return out;
    }
    // Keep the longest suffix that is a proper prefix of some stop string.
    let keep = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.held.length); n > keep; n--) {
        if (this.held.endsWith(s.slice(0, n))) {
          keep = n;
          break;
        }
      }
    }
    const out = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return out;
  }

  /** Releases whatever is held (end of generation without a stop). */
  flush(): string {
    const out = this.held;
    this.held = '';
    return out;
  }
}
