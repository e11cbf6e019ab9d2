import { writeFileSync } from 'node:fs';
import { fail } from '../errors.js';
import { deltaHeatmapSvg } from '../inspect/heatmap-svg.js';
import { traceModel, traceToJson } from '../inspect/trace.js';
import { num, parse } from './args.js';
import { MODEL_HELP, MODEL_OPTIONS, openModel } from './common.js';

export const INSPECT_HELP = `mamba-ts inspect: trace the selection mechanism on a prompt

Usage: mamba-ts inspect --prompt <text> --out <trace.json|trace.svg> [--layer N] [--model ...]

Writes, for every Mamba-1 layer, Δ per token and channel, the effective memory length per channel
(tokens whose input still weighs >= 1/e in the channel's slowest state, from exp(Σ Δ·A)), the state's
norm over time and |B|, |C| per token (.json); or one layer's Δ as a heatmap (.svg).

${MODEL_HELP}
  --prompt, -p <text>               the text to trace (required)
  --out, -o <file.json|file.svg>    where to write the trace (required)
  --layer <n>                       the layer drawn in the SVG (default 0)
  --help, -h                        this help
`;

export async function inspectCommand(argv: string[]): Promise<void> {
  const { values: v } = parse('inspect', argv, {
    ...MODEL_OPTIONS,
    prompt: { type: 'string', short: 'p' },
    out: { type: 'string', short: 'o' },
    layer: { type: 'string' },
  });
  if (v.help) {
    process.stdout.write(INSPECT_HELP);
    return;
  }
  const prompt = v.prompt as string | undefined;
  const out = v.out as string | undefined;
  if (prompt === undefined || prompt === '') fail('BAD_ARGUMENT', 'inspect: --prompt <text> is required');
  if (!out || !/\.(json|svg)$/i.test(out))
    fail(
      'BAD_ARGUMENT',
      `inspect: --out must name a .json or .svg file, got ${out === undefined ? 'nothing' : `"${out}"`}`,
    );
  const { model } = await openModel(v);
  const ids = model.encode(prompt);
  const trace = await traceModel(
    model.lm,
    ids,
    ids.map((id) => model.decode([id])),
  );
  const layer = num(v.layer, 'layer', { int: true, min: 0, max: trace.layers.length - 1 }) ?? 0;
  writeFileSync(out, /\.svg$/i.test(out) ? deltaHeatmapSvg(trace, layer) : JSON.stringify(traceToJson(trace)));
  process.stdout.write(`${out}: ${trace.layers.length} layers x ${trace.length} tokens x ${trace.channels} channels\n`);
}
