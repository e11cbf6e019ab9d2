import { createInterface } from 'node:readline';
import { fail } from '../errors.js';
import type { ChatMessage, ChatOptions, ChatSession } from '../model.js';
import { num, parse } from './args.js';
import { MODEL_HELP, MODEL_OPTIONS, openModel } from './common.js';

export const CHAT_HELP = `mamba-ts chat: talk with a model, turn by turn, the reply streamed as it is generated

Usage: mamba-ts chat [--model <dir|org/name>] [--system "text"] [options]

The conversation is rendered by the checkpoint's chat template (chat_template.jinja or tokenizer_config.json's
chat_template). Each turn feeds the model only the new messages' tokens: the recurrent state carries the rest.
A model without a chat template (such as the small model shipped with mamba-ts) gets plain "User: ..." /
"Assistant:" lines, and its reply ends where it starts the next "User:" line.
Ctrl-C stops the current reply and keeps the conversation; Ctrl-C twice at an empty prompt (or Ctrl-D) exits.
/reset starts a new conversation (the system message kept).

${MODEL_HELP}
  --system, -s <text>               the system message
  --max-new-tokens, -n <n>          reply length limit in tokens (default 256)
  --greedy                          always take the most likely token
  --temperature <t>                 sampling temperature, 0 = greedy (default 0.8)
  --top-k <k>                       keep the k most likely tokens, 0 = off (default 40)
  --top-p <p>                       nucleus sampling mass, 1 = off (default 0.95)
  --min-p <p>                       drop tokens below p x the top probability, 0 = off (default 0.05)
  --repetition-penalty <r>          penalise tokens already present, 1 = off (default 1)
  --seed <n>                        random seed (default: random)
  --stats                           after each reply, print to stderr the tokens fed and reused
  --help, -h                        this help
`;

export async function chatCommand(argv: string[]): Promise<void> {
  const { values: v } = parse('chat', argv, {
    ...MODEL_OPTIONS,
    system: { type: 'string', short: 's' },
    'max-new-tokens': { type: 'string', short: 'n' },
    greedy: { type: 'boolean' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    'min-p': { type: 'string' },
    'repetition-penalty': { type: 'string' },
    seed: { type: 'string' },
    stats: { type: 'boolean' },
  });
  if (v.help) {
    process.stdout.write(CHAT_HELP);
    return;
  }
  const opts: ChatOptions = {};
  const set = <K extends keyof ChatOptions>(k: K, x: ChatOptions[K] | undefined): void => {
    if (x !== undefined) opts[k] = x;
  };
  set('maxNewTokens', num(v['max-new-tokens'], 'max-new-tokens', { int: true, min: 1 }));
  set('greedy', v.greedy as boolean | undefined);
  set('temperature', num(v.temperature, 'temperature', { min: 0 }));
  set('topK', num(v['top-k'], 'top-k', { int: true, min: 0 }));
  set('topP', num(v['top-p'], 'top-p', { min: 0, minExclusive: true, max: 1 }));
  set('minP', num(v['min-p'], 'min-p', { min: 0, max: 1 }));
  set('repetitionPenalty', num(v['repetition-penalty'], 'repetition-penalty', { min: 0, minExclusive: true }));
  set('seed', num(v.seed, 'seed', { int: true, min: 0, max: 0xffffffff }));
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
