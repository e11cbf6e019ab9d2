import { isMambaError } from '../errors.js';
import { ioError } from '../io/node/fs-errors.js';
import { generateCommand } from './generate.js';
import { infoCommand } from './info.js';
import { logitsCommand } from './logits.js';

const HELP = `mamba-ts: Mamba selective state space models in TypeScript

Usage: mamba-ts <command> [options]     (mamba-ts <command> --help for each)

Commands:
  generate   generate text from a prompt (default: the small model shipped with mamba-ts)
  chat       talk with a model, turn by turn (its chat template; the state carries the conversation)
  logits     print the logits of a token sequence as JSON
  info       describe a model: architecture, parameters, state size, dtypes
  train      train a model on a text file or the Brown corpus; --eval: bits per byte of a model
  bench      measure decode and prefill speed
  tasks      train and compare sequence mixers on the papers' synthetic tasks
  inspect    trace Δ, memory length and state norms of a prompt (JSON or an SVG heatmap)
  web        serve the web app (playground and the model's inside) on 127.0.0.1
  serve      an OpenAI-compatible HTTP server with continuous batching and a prompt cache
`;

type Command = (argv: string[]) => Promise<void>;

async function lazy(mod: string, fn: string): Promise<Command> {
  const m = (await import(mod)) as Record<string, Command>;
  return m[fn];
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  generate: async () => generateCommand,
  logits: async () => logitsCommand,
  info: async () => infoCommand,
  chat: () => lazy('./chat.js', 'chatCommand'),
  bench: () => lazy('./bench.js', 'benchCommand'),
  train: () => lazy('./train.js', 'trainCommand'),
  tasks: () => lazy('./tasks.js', 'tasksCommand'),
  inspect: () => lazy('./inspect.js', 'inspectCommand'),
  web: () => lazy('./web.js', 'webCommand'),
  serve: () => lazy('./serve.js', 'serveCommand'),
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP);
    return cmd ? 0 : 1;
  }
  if (cmd === '--version' || cmd === '-v') {
    process.stdout.write('mamba-ts 0.1.0\n');
    return 0;
  }
  const get = COMMANDS[cmd];
  if (!get) {
    process.stderr.write(
      `mamba-ts: error[UNKNOWN_OPTION]: unknown command "${cmd}"; commands: ${Object.keys(COMMANDS).join(', ')}\n`,
    );
    return 2;
  }
  try {
    await (
      await get()
    )(rest);
    return 0;
  } catch (e) {
    // A file-system error no command turned into a MambaError still reads as one (path, reason).
    const io = isMambaError(e) ? e : ioError(e, `${cmd}: a file operation failed`);
    if (io !== e && isMambaError(io)) {
      process.stderr.write(`mamba-ts: error[${io.code}]: ${io.message}\n`);
      return 1;
    }
    if (isMambaError(e)) {
      process.stderr.write(`mamba-ts: error[${e.code}]: ${e.message}\n`);
      return e.code === 'UNKNOWN_OPTION' || e.code === 'BAD_ARGUMENT' ? 2 : 1;
    }
    process.stderr.write(`mamba-ts: internal error (a bug; please report it):\n${(e as Error)?.stack ?? String(e)}\n`);
    return 70;
  }
}

// Only run when executed, not when imported by tests.
if (process.argv[1] && /mamba-ts(\.js)?$|cli[\\/]main\.js$/.test(process.argv[1])) {
  // Exit explicitly once output is flushed: worker threads and GPU devices would keep Node alive.
  const exit = (code: number): void => {
    process.stdout.write('', () => process.exit(code));
  };
  main(process.argv.slice(2)).then(exit, (e: unknown) => {
    process.stderr.write(String(e) + '\n');
    exit(70);
  });
}
