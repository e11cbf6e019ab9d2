import { fail } from '../errors.js';
import { DEFAULT_MAX_NEW_TOKENS, DEFAULT_SAMPLING } from '../generate/generate.js';
import type { GenerateTextOptions } from '../model.js';
import { HELP_OPTION, helpText, parse, tokenList, type CommandSpec } from './args.js';
import { MODEL_OPTIONS, openModel } from './common.js';

export const GENERATE = {
  name: 'generate',
  summary: 'stream text (or token ids) from a model',
  usage: [
    'mamba-ts generate [--model <dir|org/name>] --prompt "text" [options]',
    'mamba-ts generate --model <dir> --tokens 1,2,3 --format json',
  ],
  options: {
    ...MODEL_OPTIONS,
    prompt: { type: 'string', short: 'p', multiple: true, help: 'the prompt; repeat for several prompts in one batch' },
    tokens: {
      type: 'string',
      multiple: true,
      arg: '<ids>',
      help: 'comma-separated token ids instead of --prompt (no tokenizer needed); repeat for a batch',
    },
    'max-new-tokens': {
      type: 'int',
      short: 'n',
      min: 0,
      default: DEFAULT_MAX_NEW_TOKENS,
      help: 'tokens to generate per prompt',
    },
    greedy: { type: 'boolean', help: 'always take the most likely token' },
    temperature: {
      type: 'number',
      min: 0,
      default: DEFAULT_SAMPLING.temperature,
      help: 'sampling temperature, 0 = greedy',
    },
    'top-k': { type: 'int', min: 0, default: DEFAULT_SAMPLING.topK, help: 'keep the k most likely tokens, 0 = off' },
    'top-p': {
      type: 'number',
      min: 0,
      minExclusive: true,
      max: 1,
      default: DEFAULT_SAMPLING.topP,
      help: 'nucleus sampling mass, 1 = off',
    },
    'min-p': {
      type: 'number',
      min: 0,
      max: 1,
      default: DEFAULT_SAMPLING.minP,
      help: 'drop tokens below p x the top probability, 0 = off',
    },
    'repetition-penalty': {
      type: 'number',
      min: 0,
      minExclusive: true,
      default: DEFAULT_SAMPLING.repetitionPenalty,
      help: 'penalise tokens already present, 1 = off',
    },
    seed: { type: 'int', min: 0, max: 0xffffffff, defaultText: 'random', help: 'random seed: same seed, same output' },
    'ignore-eos': { type: 'boolean', help: 'keep going after the end-of-text token' },
    stop: { type: 'string', multiple: true, nonEmpty: true, help: 'stop when this text appears' },
    format: {
      type: 'enum',
      values: ['text', 'json'],
      default: 'text',
      help:
        'text: stream the generated text; json: print {"tokens": [prompt ids..., new ids...]} ' +
        '(one line per prompt)',
    },
    ...HELP_OPTION,
  },
} as const satisfies CommandSpec;

export async function generateCommand(argv: string[]): Promise<void> {
  const { help, values: v } = parse(GENERATE, argv);
  if (help) {
    process.stdout.write(helpText(GENERATE));
    return;
  }
  const prompts = v.prompt;
  const tokens = v.tokens.map((t) => tokenList(t));
  if (prompts.length && tokens.length) fail('BAD_ARGUMENT', 'give either --prompt or --tokens, not both');
  if (!prompts.length && !tokens.length)
    fail('EMPTY_INPUT', 'nothing to continue: give --prompt "text" or --tokens 1,2,3');
  prompts.forEach((p, i) => {
    if (p.length === 0)
      fail('EMPTY_INPUT', `--prompt ${prompts.length > 1 ? `#${i + 1} ` : ''}is empty: give some text to continue`);
  });
  const opts: GenerateTextOptions = {
    greedy: v.greedy,
    temperature: v.temperature,
    topK: v['top-k'],
    topP: v['top-p'],
    minP: v['min-p'],
    repetitionPenalty: v['repetition-penalty'],
    ignoreEos: v['ignore-eos'],
    ...(v['max-new-tokens'] !== undefined ? { maxNewTokens: v['max-new-tokens'] } : {}),
    ...(v.seed !== undefined ? { seed: v.seed } : {}),
    ...(v.stop.length ? { stopStrings: v.stop } : {}),
  };
  const { model } = await openModel(v);
  if (prompts.length && !model.tokenizer)
    fail('BAD_ARGUMENT', `${model.source} has no tokenizer.json, so --prompt cannot be encoded: use --tokens`);
  const input = prompts.length ? prompts : tokens;
  const ac = new AbortController();
  const onSig = (): void => ac.abort();
  process.once('SIGINT', onSig);
  opts.signal = ac.signal;
  try {
    if (v.format === 'json') {
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
