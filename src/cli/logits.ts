import { fail } from '../errors.js';
import { parse, tokenList } from './args.js';
import { MODEL_HELP, MODEL_OPTIONS, openModel } from './common.js';

export const LOGITS_HELP = `mamba-ts logits: print the logits of every position as JSON

Usage: mamba-ts logits --model <dir> --tokens 1,2,3 [--backend cpu]

${MODEL_HELP}
  --tokens <ids>                    comma-separated token ids (required)
  --help, -h                        this help

Prints {"logits": [[...vocab floats...], ...]}, one row per input position.
`;

export async function logitsCommand(argv: string[]): Promise<void> {
  const { values: v } = parse('logits', argv, { ...MODEL_OPTIONS, tokens: { type: 'string' } });
  if (v.help) {
    process.stdout.write(LOGITS_HELP);
    return;
  }
  if (typeof v.tokens !== 'string') fail('EMPTY_INPUT', 'logits: --tokens is required, e.g. --tokens 1,2,3');
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
