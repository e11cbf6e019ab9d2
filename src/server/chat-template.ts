import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { fail } from '../errors.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** A rendered conversation and where each message's text ends in it (character offsets). */
export interface RenderedChat {
  text: string;
  messageEnds: number[];
}

/**
 * How chat messages become a prompt. A checkpoint's own `chat_template` (tokenizer_config.json or
 * chat_template.jinja) is rendered with @huggingface/jinja, as transformers does. Without one (the
 * shipped model is a base model), the fallback is plain text that base models continue sensibly:
 *
 *   System: {content}\n\nUser: {content}\n\nAssistant: {content}\n\n ... Assistant:
 *
 * (no space after the colon where the content starts with white space, as a reply generated after
 * "Assistant:" does: the quoted reply then has the tokens it was generated as)
 *
 * and, for the fallback only, generation also stops at "\nUser:" (the model starting the next turn).
 */
export class ChatTemplate {
  private constructor(
    private readonly template: Template | null,
    private readonly specials: Record<string, string>,
    /** Where this template came from, for /v1/models and logs. */
    readonly source: string,
  ) {}

  static fallback(): ChatTemplate {
    return new ChatTemplate(null, {}, 'fallback');
  }

  /** Stop strings implied by the template. */
  get stops(): string[] {
    return this.template ? [] : ['\nUser:'];
  }

  /** The checkpoint directory's chat template, or the fallback when it has none. */
  static async load(dir: string): Promise<ChatTemplate> {
    let cfg: Record<string, unknown> = {};
    try {
      cfg = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    } catch { /* no tokenizer config: no template */ }
    let src: unknown = cfg.chat_template;
    if (Array.isArray(src)) {
      src = (src as { name?: string; template?: string }[]).find((t) => t.name === 'default')?.template;
    }
    if (typeof src !== 'string') {
      try { src = await readFile(join(dir, 'chat_template.jinja'), 'utf8'); } catch { /* none */ }
    }
    if (typeof src !== 'string') return ChatTemplate.fallback();
    const special = (v: unknown): string => {
      const content = (v as { content?: unknown } | null)?.content;
      return typeof v === 'string' ? v : typeof content === 'string' ? content : '';
    };
    try {
      const specials = { bos_token: special(cfg.bos_token), eos_token: special(cfg.eos_token) };
      return new ChatTemplate(new Template(src), specials, 'checkpoint');
    } catch (e) {
      return fail('CORRUPT_FILE', `the chat_template of ${dir} does not parse: ${(e as Error).message}`);
    }
  }

  render(messages: readonly ChatMessage[], addGenerationPrompt = true): string {
    if (!this.template) {
      const name = { system: 'System', user: 'User', assistant: 'Assistant' } as const;
      // "Role: content", without the space where the content starts with white space: a reply generated
      // after "Assistant:" does (" The...", "\n\n..."), and quoting it back must give the same tokens
      const sep = (c: string): string => (/^\s/.test(c) ? '' : ' ');
      const turns = messages.map((m) => `${name[m.role]}:${sep(m.content)}${m.content}\n\n`).join('');
      return turns + (addGenerationPrompt ? 'Assistant:' : '');
    }
    return this.template.render({ messages, add_generation_prompt: addGenerationPrompt, ...this.specials });
  }

  /** The prompt, and where each message ends where that is a prefix of it (snapshot points). */
  renderWithEnds(messages: readonly ChatMessage[]): RenderedChat {
    const text = this.render(messages);
    const messageEnds: number[] = [];
    for (let i = 1; i <= messages.length; i++) {
      const head = this.render(messages.slice(0, i), false);
      if (head.length > 0 && text.startsWith(head)) messageEnds.push(head.length);
    }
    return { text, messageEnds };
  }
}
