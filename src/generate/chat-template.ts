import { Template } from '@huggingface/jinja';
import { fail } from '../errors.js';

/**
 * Chat templates: a conversation (role/content messages) rendered to the prompt text a chat checkpoint was trained
 * on, by the Jinja template it ships (`chat_template` in tokenizer_config.json, or chat_template.jinja), with
 * `@huggingface/jinja`, the renderer transformers.js uses. Shared by `Model.chat`, the `chat` command and any
 * server: `renderChat(template, messages, { addGenerationPrompt, bosToken, eosToken })`.
 */

/** One turn of a conversation, as in transformers' `apply_chat_template` (content as plain text). */
export interface ChatMessage {
  role: string;
  content: string;
}

export interface RenderChatOptions {
  /** Append the assistant's opening (the template's `add_generation_prompt` branch). Default true. */
  addGenerationPrompt?: boolean;
  /** The tokenizer's BOS / EOS token strings (`bos_token`, `eos_token` in the template). */
  bosToken?: string | undefined;
  eosToken?: string | undefined;
  /** Further variables for the template (e.g. `tools`, `date_string`). */
  extra?: Record<string, unknown>;
}

/**
 * What mamba-ts uses for a checkpoint without a chat template (base models, such as the small model it ships): one
 * plain line per message, "System: ...", "User: ...", "Assistant: ...", and "Assistant:" to open the reply. A base
 * model trained on text continues such a transcript most naturally, and having no end-of-turn token it ends its
 * reply by starting the next "User:" line, hence `FALLBACK_STOP_STRINGS`.
 */
export const FALLBACK_CHAT_TEMPLATE =
  '{% for m in messages %}{{ m.role | capitalize }}: {{ m.content | trim }}\n{% endfor %}' +
  '{% if add_generation_prompt %}Assistant:{% endif %}';

/** Where a fallback-template reply ends (the model starting the user's next line); not part of the reply. */
export const FALLBACK_STOP_STRINGS: readonly string[] = ['\nUser:'];

const compiled = new Map<string, Template>();

function compile(template: string): Template {
  let t = compiled.get(template);
  if (!t) {
    try {
      t = new Template(template);
    } catch (e) {
      fail('CORRUPT_FILE', `the chat template does not parse as Jinja: ${(e as Error).message}`);
    }
    if (compiled.size > 16) compiled.clear(); // a handful of templates per process; never grows without bound
    compiled.set(template, t);
  }
  return t;
}

/** Renders `messages` through a chat template to the prompt text (special tokens written as text). */
export function renderChat(template: string, messages: readonly ChatMessage[], o: RenderChatOptions = {}): string {
  messages.forEach((m, i) => {
    if (typeof m?.role !== 'string' || typeof m.content !== 'string')
      fail('BAD_ARGUMENT', `chat message ${i} must be {role: string, content: string}, got ${JSON.stringify(m)}`);
  });
  const t = compile(template);
  try {
    return t.render({
      ...o.extra,
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: o.addGenerationPrompt ?? true,
      bos_token: o.bosToken ?? '',
      eos_token: o.eosToken ?? '',
    });
  } catch (e) {
    // Templates check the conversation themselves (raise_exception: "roles must alternate user/assistant", ...).
    return fail('BAD_ARGUMENT', `the chat template refused the conversation: ${(e as Error).message}`);
  }
}

/** What a checkpoint says about chatting with it. */
export interface ChatSetup {
  /** The Jinja chat template (chat_template.jinja, or tokenizer_config.json's chat_template); none: the fallback. */
  template?: string | undefined;
  /** Every EOS id the checkpoint declares (config.json and generation_config.json `eos_token_id`, lists included). */
  eosTokenIds?: readonly number[] | undefined;
  /** tokenizer_config.json's `bos_token` / `eos_token` strings (the template's `bos_token`, `eos_token`). */
  bosToken?: string | undefined;
  eosToken?: string | undefined;
}

/**
 * The chat setup from a checkpoint's files (each absent when the file is): `chat_template.jinja`, which transformers 5
 * writes and prefers, else tokenizer_config.json's `chat_template`; and every `eos_token_id` of config.json and
 * generation_config.json, a number or a list (instruct checkpoints often list the end-of-turn token there).
 */
export function chatSetupFrom(files: {
  chatTemplateJinja?: string | undefined;
  tokenizerConfig?: unknown;
  config?: unknown;
  generationConfig?: unknown;
}): ChatSetup {
  const field = (obj: unknown, key: string): unknown =>
    obj && typeof obj === 'object' && !Array.isArray(obj) ? (obj as Record<string, unknown>)[key] : undefined;
  const template = files.chatTemplateJinja ?? pickChatTemplate(field(files.tokenizerConfig, 'chat_template'));
  const eos = new Set<number>();
  for (const [obj, file] of [
    [files.config, 'config.json'],
    [files.generationConfig, 'generation_config.json'],
  ] as const) {
    const v = field(obj, 'eos_token_id');
    if (v === undefined || v === null) continue;
    for (const id of Array.isArray(v) ? v : [v]) {
      if (!Number.isSafeInteger(id) || (id as number) < 0)
        fail('CORRUPT_FILE', `${file}: eos_token_id must be a token id or a list of them, got ${JSON.stringify(v)}`);
      eos.add(id as number);
    }
  }
  // a token string, or an AddedToken object {content, ...}
  const special = (v: unknown): string | undefined =>
    typeof v === 'string' ? v : typeof field(v, 'content') === 'string' ? (field(v, 'content') as string) : undefined;
  return {
    template,
    eosTokenIds: [...eos],
    bosToken: special(field(files.tokenizerConfig, 'bos_token')),
    eosToken: special(field(files.tokenizerConfig, 'eos_token')),
  };
}

/**
 * The template to use from tokenizer_config.json's `chat_template`: a string, or a list of `{name, template}` of
 * which transformers takes the one named "default". Undefined when there is none.
 */
export function pickChatTemplate(value: unknown, file = 'tokenizer_config.json'): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.filter(
      (x): x is { name: string; template: string } =>
        !!x && typeof x === 'object' && typeof x.name === 'string' && typeof x.template === 'string',
    );
    if (named.length !== value.length)
      fail('CORRUPT_FILE', `${file}: chat_template list entries must be {name, template} strings`);
    const d = named.find((x) => x.name === 'default');
    if (d) return d.template;
    fail(
      'UNSUPPORTED',
      `${file}: chat_template has no "default" entry (named: ${named.map((x) => x.name).join(', ') || 'none'})`,
    );
  }
  return fail('CORRUPT_FILE', `${file}: chat_template must be a string or a list of {name, template}`);
}
