import { renderChat } from '../generate/chat-template.js';
import { readChatSetup } from '../node/chat-files.js';

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
 * How chat messages become a prompt. A checkpoint's own `chat_template` (the model's chat setup:
 * chat_template.jinja or tokenizer_config.json) is rendered by the library's `renderChat`
 * (@huggingface/jinja), as `Model.chat` does. Without one (the shipped model is a base model), the
 * fallback is plain text that base models continue sensibly:
 *
 *   System: {content}\n\nUser: {content}\n\nAssistant: {content}\n\n ... Assistant:
 *
 * (no space after the colon where the content starts with white space, as a reply generated after
 * "Assistant:" does: the quoted reply then has the tokens it was generated as, so the next turn's
 * prompt extends the snapshot taken after the reply — why the server does not use the library's
 * trimmed fallback), and, for the fallback only, generation also stops at "\nUser:".
 */
export class ChatTemplate {
  private constructor(
    private readonly template: string | null,
    private readonly specials: { bosToken?: string | undefined; eosToken?: string | undefined },
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

  /** A checkpoint directory's chat template (readChatSetup: chat_template.jinja or tokenizer_config.json), or the fallback. */
  static async load(dir: string): Promise<ChatTemplate> {
    const { template, bosToken, eosToken } = await readChatSetup(dir);
    if (template === undefined) return ChatTemplate.fallback();
    const t = new ChatTemplate(template, { bosToken, eosToken }, 'checkpoint');
    t.render([{ role: 'user', content: 'hello' }]); // a template that does not parse fails at start-up, not per request
    return t;
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
    return renderChat(this.template, messages, { addGenerationPrompt, ...this.specials });
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
