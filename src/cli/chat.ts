import { createInterface } from 'node:readline';
import { fail } from '../errors.js';
import type { ChatMessage, ChatOptions, ChatSession } from '../model.js';
import { HELP_OPTION, helpText, parse, type CommandSpec } from './args.js';
import { MODEL_OPTIONS, openModel } from './common.js';
import { GENERATE } from './generate.js';

const G = GENERATE.options;

export const CHAT = {
  name: 'chat',
  summary: 'talk with a model, turn by turn, the reply streamed as it is generated',
  usage: ['mamba-ts chat [--model <dir|org/name>] [--system "text"] [options]'],
  options: {
    ...MODEL_OPTIONS,
    system: { type: 'string', short: 's', help: 'the system message' },
    'max-new-tokens': { type: 'int', short: 'n', min: 1, default: 256, help: 'reply length limit in tokens' },
    greedy: G.greedy,
    temperature: G.temperature,
    'top-k': G['top-k'],
    'top-p': G['top-p'],
    'min-p': G['min-p'],
    'repetition-penalty': G['repetition-penalty'],
    seed: G.seed,
    stats: { type: 'boolean', help: 'after each reply, print to stderr the tokens fed and reused' },
    ...HELP_OPTION,
  },
  footer:
    "The conversation is rendered by the checkpoint's chat template (chat_template.jinja or tokenizer_config.json's\n" +
    "chat_template). Each turn feeds the model only the new messages' tokens: the recurrent state carries the rest.\n" +
    'A model without a chat template (such as the small model shipped with mamba-ts) gets plain "User: ..." /\n' +
    '"Assistant:" lines, and its reply ends where it starts the next "User:" line.\n' +
    'Ctrl-C stops the current reply and keeps the conversation; Ctrl-C twice at an empty prompt (or Ctrl-D) exits.\n' +
    '/reset starts a new conversation (the system message kept).',
} as const satisfies CommandSpec;

export async function chatCommand(argv: string[]): Promise<void> {
  const { help, values: v } = parse(CHAT, argv);
  if (help) {
    process.stdout.write(helpText(CHAT));
    return;
  }
  const opts: ChatOptions = {
    maxNewTokens: v['max-new-tokens'],
    temperature: v.temperature,
    topK: v['top-k'],
    topP: v['top-p'],
    minP: v['min-p'],
    repetitionPenalty: v['repetition-penalty'],
  };
  if (v.greedy) opts.greedy = true;
  if (v.seed !== undefined) opts.seed = v.seed;
  const system = v.system as string | undefined;
  const { model } = await openModel(v);
  if (!model.tokenizer) fail('BAD_ARGUMENT', `${model.source} has no tokenizer.json: chat needs one`);
  if (!model.hasChatTemplate)
    process.stderr.write(`(${model.source} has no chat template: using plain "User:" / "Assistant:" lines)\n`);

  const start = (): ChatMessage[] => (system ? [{ role: 'system', content: system }] : []);
  let messages = start();
  let session: ChatSession | undefined;
  let turn = 0;
  let replying: AbortController | null = null;
  let armed = false; // a Ctrl-C at an empty prompt: the next one exits

  const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: '> ' });
  const interrupt = (): void => {
    if (replying) {
      replying.abort(); // stops the reply; the conversation goes on
      return;
    }
    if (armed && rl.line === '') {
      rl.close();
      return;
    }
    armed = rl.line === '';
    process.stdout.write(armed ? '\n(Ctrl-C again to exit)\n' : '\n');
    if (rl.terminal) rl.write(null, { ctrl: true, name: 'u' }); // Ctrl-C at a typed line clears it, as shells do
    rl.prompt();
  };
  rl.on('SIGINT', interrupt); // a terminal: readline turns Ctrl-C into this event
  process.on('SIGINT', interrupt); // piped input: the signal itself
  try {
    rl.prompt();
    for await (const line of rl) {
      armed = false;
      const text = line.trim();
      if (text === '/reset') {
        session?.dispose();
        session = undefined;
        messages = start();
        process.stdout.write('(new conversation)\n');
      } else if (text) {
        messages.push({ role: 'user', content: text });
        replying = new AbortController();
        const reply = await model.chat(messages, {
          ...opts,
          ...(session ? { session } : {}),
          signal: replying.signal,
          onText: (t) => process.stdout.write(t),
        });
        replying = null;
        session = reply.session;
        // The reply as shown, stopped or not, is the assistant's turn: the next render holds what the state saw.
        messages.push({ role: 'assistant', content: reply.text.trim() });
        process.stdout.write(reply.finish === 'aborted' ? '\n(stopped)\n' : '\n');
        turn++;
        if (v.stats)
          process.stderr.write(
            `[turn ${turn}: fed ${reply.fed} prompt tokens, reused ${reply.reused} (${reply.resume}); ` +
              `${reply.tokens.length} reply tokens, ${reply.finish}]\n`,
          );
      }
      rl.prompt();
    }
  } finally {
    process.off('SIGINT', interrupt);
    session?.dispose();
    process.stdout.write('\n');
  }
}
