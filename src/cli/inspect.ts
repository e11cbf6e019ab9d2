import { writeFileSync } from 'node:fs';
import { fail } from '../errors.js';
import { deltaHeatmapSvg } from '../inspect/heatmap-svg.js';
import { traceModel, traceToJson } from '../inspect/trace.js';
import { HELP_OPTION, helpText, parse, type CommandSpec } from './args.js';
import { MODEL_OPTIONS, openModel } from './common.js';

export const INSPECT = {
  name: 'inspect',
  summary: 'trace the selection mechanism on a prompt',
  usage: ['mamba-ts inspect --prompt <text> --out <trace.json|trace.svg> [--layer N] [--model ...]'],
  options: {
    ...MODEL_OPTIONS,
    prompt: { type: 'string', short: 'p', nonEmpty: true, help: 'the text to trace (required)' },
    out: { type: 'string', short: 'o', arg: '<file.json|file.svg>', help: 'where to write the trace (required)' },
    layer: { type: 'int', min: 0, default: 0, help: 'the layer drawn in the SVG' },
    ...HELP_OPTION,
  },
  footer:
    "Writes, for every layer (Mamba-1, Mamba-2: one Δ per head, or a task model's S6 / S4D), Δ per token and\n" +
    'channel, the effective memory length per channel (tokens whose input still weighs >= 1/e in the\n' +
    "channel's slowest state, from exp(Σ Δ·A)), the state's norm over time and |B|, |C| per token (.json);\n" +
    "or one layer's Δ as a heatmap (.svg).",
} as const satisfies CommandSpec;

export async function inspectCommand(argv: string[]): Promise<void> {
  const { help, values: v } = parse(INSPECT, argv);
  if (help) {
    process.stdout.write(helpText(INSPECT));
    return;
  }
  const { prompt, out } = v;
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
  const layer = v.layer;
  if (layer >= trace.layers.length) {
    fail(
      'BAD_ARGUMENT',
      `--layer must be an integer <= ${trace.layers.length - 1} (the model has ${trace.layers.length} layers), got ${layer}`,
    );
  }
  writeFileSync(out, /\.svg$/i.test(out) ? deltaHeatmapSvg(trace, layer) : JSON.stringify(traceToJson(trace)));
  process.stdout.write(`${out}: ${trace.layers.length} layers x ${trace.length} tokens x ${trace.channels} channels\n`);
}
