import type { ModelInfo } from '../model.js';
import { HELP_OPTION, helpText, parse, type CommandSpec } from './args.js';
import { MODEL_OPTIONS, openModel } from './common.js';
import { mamba1StateBytesAt } from '../models/config.js';
import type { HybridConfig } from '../models/config-hybrid.js';
import type { Zamba2Shared } from '../models/config-zamba2.js';

export const INFO = {
  name: 'info',
  summary: 'describe a model',
  usage: ['mamba-ts info [--model <dir|org/name>] [--format text|json]'],
  options: {
    ...MODEL_OPTIONS,
    format: { type: 'enum', values: ['text', 'json'], default: 'text', help: 'output format' },
    ...HELP_OPTION,
  },
} as const satisfies CommandSpec;

export async function infoCommand(argv: string[]): Promise<void> {
  const { help, values: v } = parse(INFO, argv);
  if (help) {
    process.stdout.write(helpText(INFO));
    return;
  }
  const format = v.format;
  const { model } = await openModel(v);
  const i = model.info();
  if (format === 'json') {
    process.stdout.write(JSON.stringify(i, null, 1) + '\n');
    return;
  }
  const c = i.config;
  const lines = [
    ['source', i.source],
    [
      'architecture',
      c.arch === 'mamba' && c.dtBCNormEps !== undefined
        ? `${i.architecture} (${c.layout} layout; falcon_mamba: RMS norms on Δ, B, C, eps ${c.dtBCNormEps})`
        : `${i.architecture} (${c.layout} layout)`,
    ],
    ['parameters', `${i.parameters.toLocaleString('en-US')} (${(i.parameters / 1e6).toFixed(2)} M)`],
    ['layers x d_model', `${i.layers} x ${i.dModel}`],
    mixerLine(c),
    [
      'vocabulary',
      `${i.vocabSize} rows${i.tokenizer ? ` (tokenizer: ${i.tokenizer.vocabSize} tokens, eos ${i.tokenizer.eosTokenId})` : ' (no tokenizer)'}`,
    ],
    ['lm_head', c.tieEmbeddings ? 'tied to the embeddings' : 'separate matrix'],
    [
      'state per sequence',
      i.stateBytesPerToken > 0
        ? `${i.stateBytesPerSequence.toLocaleString('en-US')} bytes constant (the Mamba layers) + ` +
          `${i.stateBytesPerToken.toLocaleString('en-US')} bytes per token of context (the attention layers' KV cache)`
        : `${i.stateBytesPerSequence.toLocaleString('en-US')} bytes (${(i.stateBytesPerSequence / 2 ** 20).toFixed(2)} MiB), whatever the context length` +
          (c.arch === 'mamba2'
            ? `; ${(i.stateBytesPerSequence / mamba1StateBytesAt(c.dModel, c.nLayer)).toFixed(2)}x a Mamba-1 state at this d_model and depth (expand 2, d_state 16)`
            : ''),
    ],
    [
      'weights held as',
      Object.entries(i.dtypes)
        .map(([d, n]) => `${d}: ${n.toLocaleString('en-US')}`)
        .join(', '),
    ],
    ['backend', i.backend],
  ];
  const w = Math.max(...lines.map(([k]) => k!.length));
  for (const [k, val] of lines) process.stdout.write(`${k!.padEnd(w)}  ${val}\n`);
}

/** The mixer's sizes, by architecture. */
function mixerLine(c: ModelInfo['config']): [string, string] {
  switch (c.arch) {
    case 'mamba':
      return ['d_inner / d_state / d_conv / dt_rank', `${c.dInner} / ${c.dState} / ${c.dConv} / ${c.dtRank}`];
    case 'mamba2':
      return [
        'd_inner (heads x head_dim) / groups / d_state / d_conv / chunk',
        `${c.dInner} (${c.nHeads} x ${c.headDim}) / ${c.nGroups} / ${c.dState} / ${c.dConv} / ${c.chunkSize}`,
      ];
    case 'mamba3':
      return [
        'd_inner (heads x head_dim) / groups / d_state / MIMO rank / rotation angles',
        `${c.dInner} (${c.nHeads} x ${c.headDim}) / ${c.nGroups} / ${c.dState} / ${c.mimoRank} / ${c.numRopeAngles}`,
      ];
    default: {
      // a Falcon-H1 layer ('mamba2+attention') counts as both
      const count = (k: string): number => c.layers.filter((l) => l.mixer.split('+').includes(k) || l.ffn === k).length;
      const m = c.mamba,
        m1 = c.mamba1;
      const a = c.attention;
      const ssm = m ? 'mamba2' : 'mamba1';
      const sizes = m
        ? `Mamba-2 ${m.nHeads} x ${m.headDim} heads, ${m.nGroups} groups, d_state ${m.dState}`
        : `Mamba-1 d_inner ${m1?.dInner}, d_state ${m1?.dState}, dt_rank ${m1?.dtRank}, RMS norms with weights on Δ, B, C`;
      return [
        `layers: ${ssm} / attention / mlp / moe`,
        `${count(ssm)} / ${count('attention')} / ${count('mlp')} / ${count('moe')}; ${sizes}; ` +
          `attention ${a.heads} heads (${a.kvHeads} kv) x ${a.headDim}, ` +
          (a.rotaryDim > 0 ? `RoPE on ${a.rotaryDim} dims` : 'no positional encoding') +
          (c.moe ? `; MoE ${c.moe.experts} experts, top ${c.moe.topK}` : '') +
          (c.arch === 'falcon_h1' ? '; Mamba-2 and attention in parallel in every layer, muP multipliers' : '') +
          (c.zamba2 ? `; ${sharedLine({ ...c, zamba2: c.zamba2 })}` : ''),
      ];
    }
  }
}

/** Zamba2: its shared blocks and where they are called. */
function sharedLine(c: HybridConfig & { zamba2: Zamba2Shared }): string {
  const z = c.zamba2;
  const at = c.layers.flatMap((l, i) => (l.shared ? [i] : []));
  return (
    `${z.blocks} shared attention + MLP block${z.blocks > 1 ? 's' : ''} (MLP ${z.mlpIntermediate}, ${z.mlpActivation}) ` +
    `called at layers ${at.join(', ')}, LoRA rank ${z.adapterRank} on ${z.attentionAdapters ? 'q, k, v, gate_up' : 'gate_up'}`
  );
}
