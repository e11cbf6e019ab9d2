import { fail } from './errors.js';
import { ChatSession, type ChatResume } from './generate/chat-session.js';
import {
  FALLBACK_CHAT_TEMPLATE,
  FALLBACK_STOP_STRINGS,
  renderChat,
  type ChatMessage,
  type ChatSetup,
} from './generate/chat-template.js';
import { generateTokens, prefill, type FinishReason, type GenerateOptions } from './generate/generate.js';
import { StopStringFilter } from './generate/stop.js';
import { stateBytes, type ModelConfig } from './models/config.js';
import { HYBRID_ARCHS, hybridStateBytes, type HybridConfig } from './models/config-hybrid.js';
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
  /** State bytes per sequence that do not grow with the context (the recurrent states). */
  stateBytesPerSequence: number;
  /** State bytes per sequence added by each token of context (the attention layers' KV cache; 0 for pure SSMs). */
  stateBytesPerToken: number;
  dtypes: Record<string, number>;
  backend: string;
  tokenizer: { vocabSize: number; eosTokenId: number | undefined } | null;
  config: ModelConfig | HybridConfig;
}

export interface ChatOptions extends GenerateTextOptions {
  /** The conversation so far (from the previous reply); a new one when omitted. */
  session?: ChatSession;
  /** Called with each piece of the reply's text as it is generated. */
  onText?: (text: string) => void;
}

export interface ChatReply {
  /** The assistant's reply (without the end-of-turn token or stop string). */
  text: string;
  /** The reply's token ids (the token that ended it included). */
  tokens: number[];
  finish: FinishReason;
  /** The conversation's state after the reply: pass it back as `session` for the next turn. */
  session: ChatSession;
  /** Prompt tokens fed this turn, tokens reused from the state, and how the state was reached. */
  fed: number;
  reused: number;
  resume: ChatResume;
}

export { ChatSession, type ChatMessage, type ChatSetup };

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
    readonly lm: LanguageModel<ModelConfig | HybridConfig>,
    readonly tokenizer: TextTokenizer | undefined,
    /** Where it was loaded from (a directory, hub id or URL). */
    readonly source: string,
    /** The chat template and EOS ids of the checkpoint, for `chat`. */
    readonly chatSetup: ChatSetup = {},
  ) {}

  get config(): ModelConfig | HybridConfig {
    return this.lm.config;
  }

  private tok(): TextTokenizer {
    return (
      this.tokenizer ?? fail('BAD_ARGUMENT', `${this.source} has no tokenizer.json: give token ids instead of text`)
    );
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
      const flat = Int32Array.from(rows.flatMap((r) => ids[r]));
      const t = this.lm.backend.upload(flat, [rows.length, l], 'i32');
      const lg = this.lm.forward(t);
      const all = await lg.readFloat();
      lg.dispose();
      t.dispose();
      rows.forEach((r, j) => (out[r] = all.slice(j * l * V, (j + 1) * l * V)));
      for (let i = 0; i < all.length; i++) {
        const v = all[i];
        if (v - v !== 0)
          fail('NON_FINITE', `logits: the model produced ${v} at position ${Math.floor(i / V) % l}, token id ${i % V}`);
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
    for await (const ev of generateTokens(this.lm, ids, opts, (r) => stops[r].done)) {
      let text = '';
      if (tk && ev.token >= 0) {
        const isEos = ev.finish === 'eos';
        const piece = isEos ? '' : streams[ev.row].push(ev.token);
        text = stops[ev.row].push(piece);
        if (ev.finish && !stops[ev.row].done)
          text += stops[ev.row].push(streams[ev.row].flush()) + stops[ev.row].flush();
      }
      const finish = stops[ev.row].done ? 'stop' : ev.finish;
      yield finish ? { row: ev.row, token: ev.token, text, finish } : { row: ev.row, token: ev.token, text };
    }
  }

  /** Generates to completion and returns each sequence's tokens and text. */
  async generateAll(prompts: Prompt | readonly Prompt[], o: GenerateTextOptions = {}): Promise<GenerationResult[]> {
    const ids = promptList(prompts).map((p, i) => this.toIds(p, i)); // encoded once: generate takes the ids
    const res: GenerationResult[] = ids.map((t) => ({
      tokens: [...t],
      newTokens: [],
      text: '',
      finish: 'length' as FinishReason,
    }));
    for await (const c of this.generate(ids, o)) {
      const r = res[c.row];
      if (c.token >= 0) {
        r.tokens.push(c.token);
        r.newTokens.push(c.token);
      }
      r.text += c.text;
      if (c.finish) r.finish = c.finish;
    }
    return res;
  }

  /** Whether the checkpoint has its own chat template (else `chat` uses FALLBACK_CHAT_TEMPLATE's plain lines). */
  get hasChatTemplate(): boolean {
    return this.chatSetup.template !== undefined;
  }

  /** The conversation rendered by the checkpoint's chat template (or the fallback), with the reply's opening. */
  renderChat(messages: readonly ChatMessage[]): string {
    const tk = this.tok();
    const token = (id: number | undefined): string | undefined =>
      id === undefined ? undefined : tk.decode([id], { skipSpecialTokens: false });
    return renderChat(this.chatSetup.template ?? FALLBACK_CHAT_TEMPLATE, messages, {
      addGenerationPrompt: true,
      bosToken: token(tk.bosTokenId),
      eosToken: token(tk.eosTokenId),
    });
  }

  /** Every id that ends a reply: the tokenizer's EOS and stop ids and every eos_token_id the checkpoint lists. */
  chatEosIds(): number[] {
    const ids = new Set<number>(this.tokenizer?.stopTokenIds ?? []);
    for (const id of this.chatSetup.eosTokenIds ?? []) ids.add(id);
    if (this.config.eosTokenId !== undefined) ids.add(this.config.eosTokenId);
    return [...ids];
  }

  /**
   * One assistant turn: renders `messages` (ending with the user's message) through the chat template, feeds the
   * state only the tokens beyond what `o.session` has consumed (see ChatSession), and generates the reply until an
   * EOS id of the checkpoint, a stop string, `maxNewTokens` (default 256) or `o.signal`. Append
   * `{role: 'assistant', content: reply.text}` and the next user message, and pass `reply.session` back.
   */
  async chat(messages: readonly ChatMessage[], o: ChatOptions = {}): Promise<ChatReply> {
    if (messages.length === 0) fail('EMPTY_INPUT', 'chat: no messages given');
    const tk = this.tok();
    const ids = tk.encode(this.renderChat(messages), { addSpecialTokens: false });
    const session = o.session ?? new ChatSession(this.lm);
    if (session.lm !== this.lm) fail('STATE_MISMATCH', 'chat: the session belongs to another model');
    const { logits, fed, reused, resume } = await session.advanceTo(ids, o.prefillChunk ?? 512);
    const stops = new StopStringFilter([
      ...(o.stopStrings ?? []),
      ...(this.hasChatTemplate ? [] : FALLBACK_STOP_STRINGS),
    ]);
    const stream = new DetokenizeStream(tk);
    const suppress = tk.vocabSize < this.lm.vocabSize ? range(tk.vocabSize, this.lm.vocabSize) : [];
    const opts: GenerateOptions = {
      ...o,
      eosTokenIds: o.eosTokenIds ?? this.chatEosIds(),
      suppressTokenIds: [...(o.suppressTokenIds ?? []), ...suppress],
    };
    const reply: ChatReply = { text: '', tokens: [], finish: 'length', session, fed, reused, resume };
    const emit = (t: string): void => {
      if (!t) return;
      reply.text += t;
      o.onText?.(t);
    };
    for await (const ev of session.generate(logits, opts, () => stops.done)) {
      if (ev.token >= 0) {
        reply.tokens.push(ev.token);
        emit(stops.push(ev.finish === 'eos' ? '' : stream.push(ev.token)));
      }
      if (ev.finish || stops.done) {
        if (!stops.done) emit(stops.push(stream.flush()) + stops.flush());
        reply.finish = stops.done ? 'stop' : (ev.finish ?? 'stop');
      }
    }
    return reply;
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
    return { state: r.state, logits: r.last[0] };
  }

  /** Serialises a state (safetensors bytes with the model signature and position). */
  saveState(state: ModelState): Promise<Uint8Array> {
    return encodeState(this.lm, state);
  }

  /** Restores a state saved by `saveState` for this model. */
  loadState(bytes: Uint8Array): Promise<ModelState> {
    return decodeState(this.lm, bytes);
  }

  private stateBytes(): { stateBytesPerSequence: number; stateBytesPerToken: number } {
    const c = this.config;
    if (isHybrid(c)) {
      const h = hybridStateBytes(c);
      return { stateBytesPerSequence: h.constantBytes, stateBytesPerToken: h.bytesPerToken };
    }
    return { stateBytesPerSequence: stateBytes(c), stateBytesPerToken: 0 };
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
      ...this.stateBytes(),
      dtypes,
      backend: this.lm.backend.name,
      tokenizer: this.tokenizer ? { vocabSize: this.tokenizer.vocabSize, eosTokenId: this.tokenizer.eosTokenId } : null,
      config: this.config,
    };
  }
}

/** Whether a loaded model's config is one of the Mamba-2 + attention hybrids. */
export function isHybrid(c: ModelConfig | HybridConfig): c is HybridConfig {
  return (HYBRID_ARCHS as readonly string[]).includes(c.arch);
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}

export { ModelState };

/** One prompt (text or ids) or a list of them, as a list. */
function promptList(prompts: Prompt | readonly Prompt[]): readonly Prompt[] {
  return typeof prompts === 'string' || (prompts.length > 0 && typeof prompts[0] === 'number')
    ? [prompts as Prompt]
    : (prompts as readonly Prompt[]);
}
