import { fail } from '../errors.js';
import { HELP_OPTION, helpText, parse, tokenList, type CommandSpec } from './args.js';
import { MODEL_OPTIONS, openModel } from './common.js';

export const LOGITS = {
  name: 'logits',
  summary: 'print the logits of every position as JSON',
  usage: ['mamba-ts logits --model <dir> --tokens 1,2,3 [--backend cpu]'],
  options: {
    ...MODEL_OPTIONS,
    tokens: { type: 'string', arg: '<ids>', help: 'comma-separated token ids (required)' },
    ...HELP_OPTION,
  },
  footer: 'Prints {"logits": [[...vocab floats...], ...]}, one row per input position.',
} as const satisfies CommandSpec;

export async function logitsCommand(argv: string[]): Promise<void> {
  const { help, values: v } = parse(LOGITS, argv);
  if (help) {
    process.stdout.write(helpText(LOGITS));
    return;
  }
  if (v.tokens === undefined) fail('EMPTY_INPUT', 'logits: --tokens is required, e.g. --tokens 1,2,3');
  const ids = tokenList(v.tokens);
  const { model } = await openModel(v);
  const [flat] = await model.logits([ids]);
  const V = model.lm.vocabSize;
  // Write row by row: a 50k-vocab row is ~0.5 MB of text, so avoid one giant string.
  process.stdout.write('{"logits": [');
  for (let t = 0; t < ids.length; t++) {
    const row = Array.from(flat!.subarray(t * V, (t + 1) * V));
    process.stdout.write((t ? ', ' : '') + JSON.stringify(row));
  }
  process.stdout.write(']}\n');
}
