import { fail } from '../errors.js';
import type { GenerateTextOptions } from '../model.js';
import { parse, num, tokenList, oneOf } from './args.js';
import { MODEL_HELP, MODEL_OPTIONS, openModel } from './common.js';

export const GENERATE_HELP = `mamba-ts generate: stream text (or token ids) from a model

Usage: mamba-ts generate [--model <dir|org/name>] --prompt "text" [options]
       mamba-ts generate --model <dir> --tokens 1,2,3 --format json

${MODEL_HELP}
  --prompt, -p <text>               the prompt; repeat for several prompts in one batch
  --tokens <ids>                    comma-separated token ids instead of --prompt (no tokenizer needed);
                                    repeat for a batch
  --max-new-tokens, -n <n>          tokens to generate per prompt (default 64)
  --greedy                          always take the most likely token
  --temperature <t>                 sampling temperature, 0 = greedy (default 0.8)
  --top-k <k>                       keep the k most likely tokens, 0 = off (default 40)
  --top-p <p>                       nucleus sampling mass, 1 = off (default 0.95)
  --min-p <p>                       drop tokens below p x the top probability, 0 = off (default 0.05)
  --repetition-penalty <r>          penalise tokens already present, 1 = off (default 1)
  --seed <n>                        random seed: same seed, same output (default: random)
  --ignore-eos                      keep going after the end-of-text token
  --stop <text>                     stop when this text appears (repeatable)
  --format <text|json>              text: stream the generated text; json: print {"tokens": [prompt ids...,
                                    new ids...]} (one line per prompt)
  --help, -h                        this help
`;

export async function generateCommand(argv: string[]): Promise<void> {
  const { values: v } = parse('generate', argv, {
    ...MODEL_OPTIONS,
    prompt: { type: 'string', short: 'p', multiple: true },
    tokens: { type: 'string', multiple: true },
    'max-new-tokens': { type: 'string', short: 'n' },
    greedy: { type: 'boolean' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    'min-p': { type: 'string' },
    'repetition-penalty': { type: 'string' },
    seed: { type: 'string' },
    'ignore-eos': { type: 'boolean' },
    stop: { type: 'string', multiple: true },
    format: { type: 'string' },
  });
  if (v.help) {
    process.stdout.write(GENERATE_HELP);
    return;
  }
  const prompts = (v.prompt as string[] | undefined) ?? [];
  const tokens = ((v.tokens as string[] | undefined) ?? []).map((t) => tokenList(t));
  if (prompts.length && tokens.length) fail('BAD_ARGUMENT', 'give either --prompt or --tokens, not both');
  if (!prompts.length && !tokens.length)
    fail('EMPTY_INPUT', 'nothing to continue: give --prompt "text" or --tokens 1,2,3');
  prompts.forEach((p, i) => {
    if (p.length === 0)
      fail('EMPTY_INPUT', `--prompt ${prompts.length > 1 ? `#${i + 1} ` : ''}is empty: give some text to continue`);
  });
  const format = oneOf(v.format, 'format', ['text', 'json'] as const, 'text');
  const opts: GenerateTextOptions = {};
  const set = <K extends keyof GenerateTextOptions>(k: K, x: GenerateTextOptions[K] | undefined): void => {
    if (x !== undefined) opts[k] = x;
  };
  set('maxNewTokens', num(v['max-new-tokens'], 'max-new-tokens', { int: true, min: 0 }));
  set('greedy', v.greedy as boolean | undefined);
  set('temperature', num(v.temperature, 'temperature', { min: 0 }));
  set('topK', num(v['top-k'], 'top-k', { int: true, min: 0 }));
  set('topP', num(v['top-p'], 'top-p', { min: 0, minExclusive: true, max: 1 }));
  set('minP', num(v['min-p'], 'min-p', { min: 0, max: 1 }));
  set('repetitionPenalty', num(v['repetition-penalty'], 'repetition-penalty', { min: 0, minExclusive: true }));
  set('seed', num(v.seed, 'seed', { int: true, min: 0, max: 0xffffffff }));
  set('ignoreEos', v['ignore-eos'] as boolean | undefined);
  set('stopStrings', v.stop as string[] | undefined);
  const { model } = await openModel(v);
  if (prompts.length && !model.tokenizer)
    fail('BAD_ARGUMENT', `${model.source} has no tokenizer.json, so --prompt cannot be encoded: use --tokens`);
  const input = prompts.length ? prompts : tokens;
  const ac = new AbortController();
  const onSig = (): void => ac.abort();
  process.once('SIGINT', onSig);
  opts.signal = ac.signal;
  try {
    if (format === 'json') {
      const res = await model.generateAll(input, opts);
      for (const r of res) process.stdout.write(JSON.stringify({ tokens: r.tokens }) + '\n');
      return;
    }
    if (input.length === 1) {
      // Stream the one sequence as it comes (the prompt first, as llama.cpp does).
      if (prompts.length) process.stdout.write(prompts[0]);
      for await (const c of model.generate(input, opts)) process.stdout.write(model.tokenizer ? c.text : ` ${c.token}`);
      process.stdout.write('\n');
      return;
    }
    const res = await model.generateAll(input, opts);
    res.forEach((r, i) => {
      process.stdout.write(`--- [${i + 1}] ---\n${prompts.length ? prompts[i] + r.text : r.newTokens.join(' ')}\n`);
    });
  } finally {
    process.off('SIGINT', onSig);
  }
}
