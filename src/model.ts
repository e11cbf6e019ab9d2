import { fail } from './errors.js';
import { generateTokens, prefill, type FinishReason, type GenerateOptions } from './generate/generate.js';
import { StopStringFilter } from './generate/stop.js';
import { stateBytes, type ModelConfig } from './models/config.js';
import type { LanguageModel } from './models/lm.js';
import { ModelState } from './models/state.js';
import { decodeState, encodeState } from './models/state-io.js';
import { DetokenizeStream } from './tokenizer/stream.js';
import type { TextTokenizer } from './tokenizer/text-tokenizer.js';

/** Options of text generation: token-level options plus stop strings and the state to start from. */
export interface GenerateTextOptions extends GenerateOptions {
  /** Generation of a sequence ends when its text contains one of these (not included in the output). */
  stopStrings?: readonly string[];
}

/** A piece of generated output for one sequence. */
export interface GenerationChunk {
  row: number;
  /** The new token id (-1 on an abort event). */
  token: number;
  /** Text completed by this token (may be '' mid-character or while a stop string might be forming). */
  text: string;
  finish?: FinishReason;
}

export interface GenerationResult {
  /** Prompt ids followed by the new ids. */
  tokens: number[];
  /** Only the new ids. */
  newTokens: number[];
  /** The generated text (without the prompt), when the model has a tokenizer. */
  text: string;
  finish: FinishReason;
}

export interface ModelInfo {
  architecture: string;
  source: string;
  parameters: number;
  layers: number;
  dModel: number;
  vocabSize: number;
  stateBytesPerSequence: number;
  dtypes: Record<string, number>;
  backend: string;
  tokenizer: { vocabSize: number; eosTokenId: number | undefined } | null;
  config: ModelConfig;
}

/** A prompt: text (needs a tokenizer) or token ids. */
export type Prompt = string | readonly number[];

/**
 * A loaded model with its tokenizer: the library's front door. The CLI is a thin layer over this.
 *
 *   const model = await loadModel('state-spaces/mamba-130m-hf');
 *   for await (const c of model.generate('The capital of France', { maxNewTokens: 20 })) process.stdout.write(c.text);
 */
export class Model {
  constructor(
    readonly lm: LanguageModel,
    readonly tokenizer: TextTokenizer | undefined,
    /** Where it was loaded from (a directory, hub id or URL). */
    readonly source: string,
  ) {}

  get config(): ModelConfig { return this.lm.config; }

  private tok(): TextTokenizer {
    return this.tokenizer ?? fail('BAD_ARGUMENT', `${this.source} has no tokenizer.json: give token ids instead of text`);
  }

  /** Text -> ids (no special tokens added: Mamba's GPT-NeoX tokenizer adds none). */
  encode(text: string): number[] {
    return this.tok().encode(text, { addSpecialTokens: false });
  }

  decode(ids: readonly number[]): string {
    return this.tok().decode(ids);
  }

  private toIds(p: Prompt, i: number): number[] {
    if (typeof p === 'string') {
      if (p.length === 0) fail('EMPTY_INPUT', `prompt ${i} is empty: give some text`);
      const ids = this.encode(p);
      if (ids.length === 0) fail('EMPTY_INPUT', `prompt ${i} encodes to no tokens`);
      return ids;
    }
    if (p.length === 0) fail('EMPTY_INPUT', `prompt ${i} has no token ids`);
    return [...p];
  }

  /**
   * Logits for a batch of sequences: one Float32Array (l x V, row-major) per sequence. Sequences of
   * equal length run as one batch.
   */
  async logits(batch: readonly Prompt[]): Promise<Float32Array[]> {
    if (batch.length === 0) fail('EMPTY_INPUT', 'logits: no sequences given');
    const ids = batch.map((p, i) => this.toIds(p, i));
    ids.forEach((s) => this.lm.checkIds(s));
    const out: Float32Array[] = new Array(ids.length);
    const byLen = new Map<number, number[]>();
    ids.forEach((s, i) => byLen.set(s.length, [...(byLen.get(s.length) ?? []), i]));
    const V = this.lm.vocabSize;
    for (const [l, rows] of byLen) {
      const flat = Int32Array.from(rows.flatMap((r) => ids[r]!));
      const t = this.lm.backend.upload(flat, [rows.length, l], 'i32');
      const lg = this.lm.forward(t);
      const all = await lg.readFloat();
      lg.dispose();
      t.dispose();
      rows.forEach((r, j) => (out[r] = all.slice(j * l * V, (j + 1) * l * V)));
      for (let i = 0; i < all.length; i++) {
        const v = all[i]!;
        if (v - v !== 0) fail('NON_FINITE', `logits: the model produced ${v} at position ${Math.floor(i / V) % l}, token id ${i % V}`);
      }
    }
    return out;
  }

  /**
   * Generates from one or more prompts, streaming a chunk per new token. Text prompts need the
   * tokenizer; token prompts work without. Rows finish independently (EOS, max tokens, stop string).
   * With `o.state` (e.g. `feed(prefix).state.clone()`), the prompts continue that state, which is left
   * holding each row's state after its last token: branch from a saved prompt, continue a conversation.
   */
  async *generate(prompts: Prompt | readonly Prompt[], o: GenerateTextOptions = {}): AsyncGenerator<GenerationChunk> {
    const ids = promptList(prompts).map((p, i) => this.toIds(p, i));
    const tk = this.tokenizer;
    if (o.stopStrings?.length && !tk) fail('BAD_ARGUMENT', 'stop strings need a tokenizer to turn tokens into text');
    const streams = tk ? ids.map(() => new DetokenizeStream(tk)) : [];
    const stops = ids.map(() => new StopStringFilter(o.stopStrings ?? []));
    const eos = o.eosTokenIds ?? (tk?.stopTokenIds.length ? tk.stopTokenIds : undefined);
    // Ids the tokenizer cannot decode (vocabulary padding rows of the embedding) are never sampled.
    const suppress = tk && tk.vocabSize < this.lm.vocabSize ? range(tk.vocabSize, this.lm.vocabSize) : [];
    const opts: GenerateOptions = { ...o, suppressTokenIds: [...(o.suppressTokenIds ?? []), ...suppress] };
    if (eos) opts.eosTokenIds = eos;
    for await (const ev of generateTokens(this.lm, ids, opts, (r) => stops[r]!.done)) {
      let text = '';
      if (tk && ev.token >= 0) {
        const isEos = ev.finish === 'eos';
        const piece = isEos ? '' : streams[ev.row]!.push(ev.token);
        text = stops[ev.row]!.push(piece);
        if (ev.finish && !stops[ev.row]!.done) text += stops[ev.row]!.push(streams[ev.row]!.flush()) + stops[ev.row]!.flush();
      }
      const finish = stops[ev.row]!.done ? 'stop' : ev.finish;
      yield finish ? { row: ev.row, token: ev.token, text, finish } : { row: ev.row, token: ev.token, text };
    }
  }

  /** Generates to completion and returns each sequence's tokens and text. */
  async generateAll(prompts: Prompt | readonly Prompt[], o: GenerateTextOptions = {}): Promise<GenerationResult[]> {
    const ids = promptList(prompts).map((p, i) => this.toIds(p, i)); // encoded once: generate takes the ids
    const res: GenerationResult[] = ids.map((t) => ({ tokens: [...t], newTokens: [], text: '', finish: 'length' as FinishReason }));
    for await (const c of this.generate(ids, o)) {
      const r = res[c.row]!;
      if (c.token >= 0) { r.tokens.push(c.token); r.newTokens.push(c.token); }
      r.text += c.text;
      if (c.finish) r.finish = c.finish;
    }
    return res;
  }

  /** A fresh recurrent state for `batch` sequences. */
  newState(batch = 1): ModelState {
    return this.lm.initState(batch);
  }

  /**
   * Runs a prompt through the model, advancing `state` (a new one when omitted), and returns the state
   * and the logits of the last position: what a prompt cache stores.
   */
  async feed(prompt: Prompt, state?: ModelState): Promise<{ state: ModelState; logits: Float32Array }> {
    const ids = this.toIds(prompt, 0);
    const r = await prefill(this.lm, [ids], 512, state ?? this.lm.initState(1));
    return { state: r.state, logits: r.last[0]! };
  }

  /** Serialises a state (safetensors bytes with the model signature and position). */
  saveState(state: ModelState): Promise<Uint8Array> {
    return encodeState(state);
  }

  /** Restores a state saved by `saveState` for this model. */
  loadState(bytes: Uint8Array): Promise<ModelState> {
    return decodeState(this.lm, bytes);
  }

  info(): ModelInfo {
    const dtypes: Record<string, number> = {};
    for (const t of this.lm.parameters().values()) dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + t.size;
    return {
      architecture: this.config.arch,
      source: this.source,
      parameters: this.lm.parameterCount(),
      layers: this.config.nLayer,
      dModel: this.config.dModel,
      vocabSize: this.lm.vocabSize,
      stateBytesPerSequence: stateBytes(this.config),
      dtypes,
      backend: this.lm.backend.name,
      tokenizer: this.tokenizer ? { vocabSize: this.tokenizer.vocabSize, eosTokenId: this.tokenizer.eosTokenId } : null,
      config: this.config,
    };
  }
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}

export { ModelState };

/** One prompt (text or ids) or a list of them, as a list. */
function promptList(prompts: Prompt | readonly Prompt[]): readonly Prompt[] {
  return typeof prompts === 'string' || (prompts.length > 0 && typeof prompts[0] === 'number') ? [prompts as Prompt] : (prompts as readonly Prompt[]);
}
