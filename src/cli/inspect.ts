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
    layer: { type: 'int', min: 0, default: 0, help: 'the layer drawn in the SVG (in a hybrid: an SSM layer)' },
    ...HELP_OPTION,
  },
  footer:
    "Writes, for every SSM layer (Mamba-1; Mamba-2, one Δ per head, also a hybrid's Mamba-2 blocks; a task\n" +
    "model's S6 / S4D), Δ per token and channel, the effective memory length per channel (tokens whose\n" +
    "input still weighs >= 1/e in the channel's slowest state, from exp(Σ Δ·A)), the state's norm over\n" +
    "time and |B|, |C| per token (.json); or one layer's Δ as a heatmap (.svg).",
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
  // --layer names a block of the model; a hybrid's attention and MLP blocks have no trace
  const layer = trace.layers.findIndex((L) => L.layer === v.layer);
  if (layer < 0) {
    const have = trace.layers.map((L) => L.layer);
    fail(
      'BAD_ARGUMENT',
      have.length === have[have.length - 1] + 1
        ? `--layer must be an integer <= ${have.length - 1} (the model has ${have.length} layers), got ${v.layer}`
        : `--layer must be one of the traced (SSM) layers ${have.join(', ')}, got ${v.layer}`,
    );
  }
  writeFileSync(out, /\.svg$/i.test(out) ? deltaHeatmapSvg(trace, layer) : JSON.stringify(traceToJson(trace)));
  process.stdout.write(
    `${out}: ${trace.layers.length} layers x ${trace.length} tokens x ${trace.channels} ${trace.unit}s\n`,
  );
}
